// The detector's golden fixture folders (../shared/golden/detector: the ops unit cases and
// the full-size Mask R-CNN v1 and v2 models, plus held-out sets of the same format) through
// the runner `grounded-sd parity` uses. Split from parity.test.ts so the long ResNet-50
// fixtures run beside the other fixtures, not after them.
import { describe, expect, it } from 'vitest';
import { fixtureDirs, parityHandler } from '../../src/pipeline/parity/index.js';
import { goldenDir } from '../helpers.js';
import { expectParity, parityCases } from './parity_cases.js';

const root = goldenDir('detector');
const cases = (await parityCases(root, root ? fixtureDirs(root) : [])).filter((c) => c.component === 'detector');

describe('golden parity: detector', () => {
  it.skipIf(!root)('finds the ops and both model fixtures, each with a handler', () => {
    for (const n of ['ops', 'maskrcnn_v1', 'maskrcnn_v2']) expect(cases.map((c) => c.name)).toContain(n);
    for (const c of cases) expect(parityHandler(c.component, c.manifest), c.name).not.toBeNull();
  });

  it.each(cases.map((c) => [c.name, c.dir]))('detector/%s passes within its tolerance', async (_name, dir) => {
    await expectParity(dir);
  });
});
