// The rules the detector model parity (pipeline/parity/detector_model.ts) compares by, on
// small synthetic lists: a swap within tolerance, a fragile row on one side, a row nothing
// covers, a summary off by more than tol. The model fixtures themselves
// (../shared/golden/detector/maskrcnn_v1, _v2 and held-out sets of the same format) run
// through the registered handler in test/pipeline/parity.test.ts, like every fixture.
import { describe, expect, it } from 'vitest';
import { matchChecks, matchRows, summaryChecks } from '../../src/pipeline/parity/detector_match.js';
import { evaluate } from '../../src/pipeline/parity/types.js';

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
