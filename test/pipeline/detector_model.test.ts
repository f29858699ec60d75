// The detector model fixtures (../shared/golden/detector/maskrcnn_v1 and _v2): every stage
// through runDetectorModelParity, every check within the manifest's tolerance and rules,
// every output, summary and check tensor the manifest lists compared. Full-size
// ResNet-50s on two small images: minutes on lavapipe. Also the matching and summary
// rules themselves on small synthetic lists (a swap within tolerance, a fragile row on
// one side, a row nothing covers, a summary off by more than tol).
import { describe, expect, it } from 'vitest';
import { matchChecks, matchRows, summaryChecks } from '../../src/pipeline/parity/detector_match.js';
import { runDetectorModelParity } from '../../src/pipeline/parity/detector_model.js';
import { readManifest, uncompared } from '../../src/pipeline/parity/index.js';
import { evaluate } from '../../src/pipeline/parity/types.js';
import { goldenDir } from '../helpers.js';

describe('detector model parity', () => {
  for (const set of ['maskrcnn_v1', 'maskrcnn_v2']) {
    const dir = goldenDir(`detector/${set}`);
    it.skipIf(!dir)(`${set}: every stage passes and every listed result is compared`, async () => {
      const d = dir as string;
      const manifest = await readManifest(d);
      const log: string[] = [];
      const checks = await runDetectorModelParity(d, manifest, (s) => log.push(s));
      const rows = checks.map(evaluate);
      const failed = rows.filter((r) => !r.pass).map((r) => `${r.name}: rel ${r.rel} max abs ${r.maxAbs} (${r.metric} ${r.tol})${r.error ? ` ${r.error}` : ''}`);
      expect(failed, log.join('\n')).toEqual([]);
      expect(uncompared(manifest, checks).map((r) => r.name)).toEqual([]);
      for (const stage of ['transform.batch', 'backbone.fpn.pool', 'rpn.proposals.0', 'roi_heads.class_logits', 'detections.0.boxes', 'roi_heads.mask_probs.0', 'postprocess.0.mask_crops']) {
        expect(rows.some((r) => r.name === stage), stage).toBe(true);
      }
    });
  }
});

describe('detector matching rules', () => {
  const tol = { score_tol: 1e-3, box_tol_px: 0.01 };
  const ref = { boxes: [0, 0, 10, 10, 5, 5, 20, 20, 30, 30, 40, 40], scores: [0.9, 0.8, 0.5], labels: [1, 2, 1] };

  it('matches rows regardless of order within the tolerances', () => {
    const impl = { boxes: [5, 5, 20, 20.005, 0, 0, 10, 10, 30, 30, 40, 40], scores: [0.8005, 0.9, 0.5], labels: [2, 1, 1] };
    const m = matchRows(ref, impl, { boxes: [], scores: [], labels: [] }, tol);
    expect(Array.from(m.refToImpl)).toEqual([1, 0, 2]);
    const { checks } = matchChecks({ boxes: 'b', scores: 's', labels: 'l' }, ref, impl, { boxes: [], scores: [], labels: [] }, tol);
    expect(checks.map(evaluate).every((r) => r.pass)).toBe(true);
  });

  it('a row missing on one side passes only when the fragile list covers it', () => {
    const impl = { boxes: [0, 0, 10, 10, 5, 5, 20, 20], scores: [0.9, 0.8], labels: [1, 2] };
    const none = matchChecks({ boxes: 'b', scores: 's', labels: 'l' }, ref, impl, { boxes: [], scores: [], labels: [] }, tol);
    expect(none.checks.map(evaluate).find((r) => r.name === 'b')?.pass).toBe(false);
    const fragile = { boxes: [30, 30, 40, 40.001], scores: [0.5001], labels: [1] };
    const covered = matchChecks({ boxes: 'b', scores: 's', labels: 'l' }, ref, impl, fragile, tol);
    expect(covered.checks.map(evaluate).every((r) => r.pass)).toBe(true);
    // An extra implementation row: covered by the fragile list, or counted.
    const extra = { boxes: [...ref.boxes, 30, 30, 40, 40.001], scores: [...ref.scores, 0.5001], labels: [...ref.labels, 1] };
    const ok = matchChecks({ boxes: 'b', scores: 's', labels: 'l' }, ref, extra, fragile, tol);
    expect(ok.checks.map(evaluate).every((r) => r.pass)).toBe(true);
    const bad = matchChecks({ boxes: 'b', scores: 's', labels: 'l' }, ref, extra, { boxes: [], scores: [], labels: [] }, tol);
    expect(bad.checks.map(evaluate).filter((r) => !r.pass).map((r) => r.name)).toEqual(['b (implementation rows matching no stored or fragile row)']);
  });

  it('labels must agree and boxes stay within box_tol_px', () => {
    const wrongLabel = { boxes: ref.boxes, scores: ref.scores, labels: [1, 3, 1] };
    expect(matchRows(ref, wrongLabel, { boxes: [], scores: [], labels: [] }, tol).refToImpl[1]).toBe(-1);
    const moved = { boxes: [0, 0, 10, 10.02, ...ref.boxes.slice(4)], scores: ref.scores, labels: ref.labels };
    expect(matchRows(ref, moved, { boxes: [], scores: [], labels: [] }, tol).refToImpl[0]).toBe(-1);
  });

  it('summaries: head/tail/sub against max |x|, sums against Σ|x| and l2', () => {
    const x = Float32Array.from({ length: 3000 }, (_, i) => Math.sin(i) * 2);
    const stats = new Float64Array([x.reduce((a, b) => a + b, 0), x.reduce((a, b) => a + Math.abs(b), 0), Math.sqrt(x.reduce((a, b) => a + b * b, 0)), 2]);
    const spec = { numel: 3000, sub_stride: 97, parts: { head: 'h', tail: 't', sub: 's', stats: 'st' } };
    const sub = Float32Array.from({ length: Math.ceil(3000 / 97) }, (_, k) => x[k * 97]);
    const ref = { head: x.slice(0, 1024), tail: x.slice(3000 - 1024), sub, stats };
    expect(summaryChecks(spec, ref, x, 1e-4).map(evaluate).every((r) => r.pass)).toBe(true);
    const off = Float32Array.from(x);
    off[0] += 2 * 3e-4;
    const rows = summaryChecks(spec, ref, off, 1e-4).map(evaluate);
    expect(rows.filter((r) => !r.pass).map((r) => r.name)).toEqual(['h', 's']);
  });
});
