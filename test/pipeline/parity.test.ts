// Every golden fixture folder under ../shared/golden (any folder with a manifest.json, at
// any depth) through the same runner `grounded-sd parity` uses: each stored output must be
// within the manifest's tolerance, and every output the manifest lists must be compared.
// Hidden fixture sets of the same format run the same way. A folder whose component has
// no handler yet is a visible skip naming the component (fixtures arrive before their code).
// The detector's folders (full-size ResNet-50s, minutes each) run from parity_detector.test.ts,
// a file of their own, so that the two test workers share the long fixtures.
import { describe, expect, it } from 'vitest';
import { fixtureDirs, parityComponents, parityHandler, runParity, uncompared } from '../../src/pipeline/parity/index.js';
import { goldenDir } from '../helpers.js';
import { expectParity, parityCases } from './parity_cases.js';

const root = goldenDir();
const dirs = root ? fixtureDirs(root) : [];
const cases = (await parityCases(root, dirs)).filter((c) => c.component !== 'detector');
const handled = cases.filter((c) => parityHandler(c.component, c.manifest));
const unhandled = cases.filter((c) => !parityHandler(c.component, c.manifest));

describe('golden parity', () => {
  it.skipIf(!root)('finds the fixture folders', () => {
    expect(dirs.length).toBeGreaterThanOrEqual(8);
  });

  it.each(handled.map((c) => [c.name, c.dir]))('%s passes within its tolerance', async (_name, dir) => {
    await expectParity(dir);
  });

  for (const c of unhandled) {
    it.skip(`${c.name}: no handler for component ${c.component} yet`, () => {});
  }

  it.skipIf(unhandled.length === 0)('runParity refuses a folder whose component has no handler, naming it', async () => {
    for (const c of unhandled) {
      await expect(runParity(c.dir)).rejects.toThrow(`no handler for component ${c.component}`);
    }
  });
});

describe('parity runner', () => {
  it('lists result tensors of the manifest that no check compared', () => {
    const manifest = { io: { tensors: {
      'a.out': { kind: 'output' }, 'a.hook.x': { kind: 'hook' }, 'a.in': { kind: 'input' },
      'a.doc': { kind: 'output', compare: 'none' },
    } } };
    const check = { actual: [1], expected: [1], metric: 'exact' as const, tol: 0 };
    expect(uncompared(manifest, [{ name: 'a.out', ...check }]).map((r) => r.name)).toEqual(['a.hook.x']);
    expect(uncompared(manifest, [{ name: 'a.out', ...check }, { name: 'a.hook.x', ...check }])).toEqual([]);
    expect(uncompared({}, [])).toEqual([]);
  });

  it('knows the components it checks', () => {
    for (const c of ['clip_text', 'unet', 'vae', 'schedulers', 'grounding', 'clip_tokenizer']) expect(parityComponents()).toContain(c);
    expect(parityHandler('no_such_component')).toBeNull();
    expect(parityHandler('constructor')).toBeNull();
  });
});
