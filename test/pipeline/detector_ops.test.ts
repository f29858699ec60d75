// The detector ops fixture (../shared/golden/detector/ops): every unit case through
// runDetectorOpsParity, every check within the manifest's tolerance, and every output the
// manifest lists compared.
import { describe, expect, it } from 'vitest';
import { readManifest, uncompared } from '../../src/pipeline/parity/index.js';
import { isDetectorOpsManifest, runDetectorOpsParity } from '../../src/pipeline/parity/detector_ops.js';
import { evaluate } from '../../src/pipeline/parity/types.js';
import { goldenDir } from '../helpers.js';

const dir = goldenDir('detector/ops');

describe('detector ops parity', () => {
  it.skipIf(!dir)('every case of detector/ops passes and every listed output is compared', async () => {
    const d = dir as string;
    const manifest = await readManifest(d);
    expect(isDetectorOpsManifest(manifest)).toBe(true);
    const checks = await runDetectorOpsParity(d, manifest, () => {});
    const rows = checks.map(evaluate);
    const failed = rows.filter((r) => !r.pass).map((r) => `${r.name}: rel ${r.rel} max abs ${r.maxAbs} (${r.metric} ${r.tol})${r.error ? ` ${r.error}` : ''}`);
    expect(failed).toEqual([]);
    expect(uncompared(manifest, checks).map((r) => r.name)).toEqual([]);
    // Every case kind of the fixture produced checks.
    for (const c of manifest.cases as { case: string }[]) {
      const prefix = { roi_align: 'ops.roi_align.', multiscale_roi_align: 'ops.msra.', batched_nms: 'ops.nms.', box_decode: 'ops.box_decode.', paste_masks_in_image: 'ops.paste.', transform: 'ops.transform.', anchors: 'ops.anchors.' }[c.case];
      expect(prefix, `case ${c.case}`).toBeDefined();
      expect(rows.some((r) => r.name.startsWith(prefix as string)), `checks for ${c.case}`).toBe(true);
    }
  });

  it.skipIf(!goldenDir('detector/maskrcnn_v1'))('tells model manifests from ops manifests', async () => {
    expect(isDetectorOpsManifest(await readManifest(goldenDir('detector/maskrcnn_v1') as string))).toBe(false);
  });
});
