import { describe, expect, it } from 'vitest';
import { InputError, LimitError, ShapeError } from '../../src/gpu/errors.js';
import { batchedNms, nms, nmsGpu, nmsGpuRecord, thresholdBelow } from '../../src/nn/nms.js';
import { batchedNmsRef } from '../../src/ref/nms.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { rng, runtime } from '../helpers.js';

// Exactness: NMS is discrete, so results must equal the float64 reference's keep list.
// Every random input here is checked to have no decision within 1e-5 of the threshold
// (the reference reports the margin), so float32 rounding cannot legitimately flip one.

/** n boxes in a 100 x 100 field (sizes 5..45), distinct scores, groups in [0, groups). */
function randomBoxes(n: number, groups: number, seed: number) {
  const r = rng(seed);
  const boxes = new Float32Array(4 * n);
  const scores = new Float32Array(n);
  const idxs = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const [x, y, w, h] = [100 * r(), 100 * r(), 5 + 40 * r(), 5 + 40 * r()];
    boxes.set([x, y, x + w, y + h], 4 * i);
    scores[i] = (i + r()) / n; // distinct
    idxs[i] = Math.floor(groups * r());
  }
  // Shuffle the scores so index order and score order differ.
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [scores[i], scores[j]] = [scores[j], scores[i]];
  }
  return { boxes, scores, idxs };
}

describe('nms (host)', () => {
  it.each([
    [1, 1, 0.5],
    [37, 1, 0.5],
    [300, 1, 0.7],
    [999, 3, 0.5], // 3996 coordinates: the coordinate-trick path
    [1001, 3, 0.5], // 4004 coordinates: the per-group path
    [1400, 5, 0.6],
  ])('%i boxes in %i groups at IoU %f equal the float64 reference', (n, groups, thr) => {
    const { boxes, scores, idxs } = randomBoxes(n, groups, n + groups);
    const ref = batchedNmsRef(boxes, scores, groups > 1 ? idxs : null, thr);
    expect(ref.margin, 'the input has no near-threshold decision').toBeGreaterThan(1e-5);
    const keep = groups > 1 ? batchedNms(boxes, scores, idxs, thr) : nms(boxes, scores, thr);
    expect(Array.from(keep)).toEqual(ref.keep);
    expect(ref.keep.length).toBeLessThan(n === 1 ? 2 : n); // something was suppressed
  });

  it('ties keep index order, the comparison is strict, NaN IoU suppresses nothing, chains resolve greedily', () => {
    // 0, 1: the same box with tied scores (index 0 first, 1 suppressed); 2 inside 0 with
    // IoU exactly 0.5 (kept: strict comparison); 3, 4: duplicated zero-area boxes (0/0,
    // both kept); chain: 5 suppresses 6 (IoU 7/13), 7 overlaps 6 (7/13) but not 5 (1/4)
    // much, and survives because 6 is gone.
    const boxes = Float32Array.from([
      0, 0, 10, 10,
      0, 0, 10, 10,
      0, 0, 10, 5,
      20, 20, 20, 20,
      20, 20, 20, 20,
      40, 0, 50, 10,
      43, 0, 53, 10,
      46, 0, 56, 10,
    ]);
    const scores = Float32Array.from([0.9, 0.9, 0.8, 0.7, 0.7, 0.6, 0.55, 0.5]);
    expect(Array.from(nms(boxes, scores, 0.5))).toEqual([0, 2, 3, 4, 5, 7]);
    expect(Array.from(nms(boxes, scores, 0.55))).toEqual([0, 2, 3, 4, 5, 6, 7]);
    expect(Array.from(nms(boxes, scores, 0.49))).toEqual([0, 3, 4, 5, 7]);
    // Different groups never suppress each other (coordinate-trick path).
    expect(Array.from(batchedNms(boxes, scores, [0, 1, 0, 0, 0, 0, 0, 0], 0.5))).toEqual([0, 1, 2, 3, 4, 5, 7]);
  });

  it('per-group path sorts the kept boxes of all groups by score', () => {
    const { boxes, scores, idxs } = randomBoxes(1200, 4, 77);
    const keep = Array.from(batchedNms(boxes, scores, idxs, 0.5));
    for (let i = 1; i < keep.length; i++) expect(scores[keep[i - 1]]).toBeGreaterThan(scores[keep[i]]);
    const ref = batchedNmsRef(boxes, scores, idxs, 0.5);
    expect(ref.margin).toBeGreaterThan(1e-5);
    expect(keep).toEqual(ref.keep);
  });

  it('rejects mismatched inputs', () => {
    expect(() => nms(new Float32Array(7), new Float32Array(2), 0.5)).toThrow(ShapeError);
    expect(() => batchedNms(new Float32Array(8), new Float32Array(2), [0], 0.5)).toThrow(ShapeError);
    expect(Array.from(batchedNms([], [], [], 0.5))).toEqual([]);
  });

  it('thresholdBelow gives the largest float32 at or below the threshold', () => {
    for (const t of [0.5, 0.7, 0.6, 0.3, 1e-3]) {
      const b = thresholdBelow(t);
      expect(b).toBeLessThanOrEqual(t);
      expect(Math.fround(b)).toBe(b);
      // The next float32 up is above t.
      const u = new Float32Array([b]);
      new Int32Array(u.buffer)[0] += 1;
      expect(u[0]).toBeGreaterThan(t);
    }
  });
});

describe('nms (GPU contender)', () => {
  it.each([
    [5, 1, 0.5],
    [37, 1, 0.5],
    [300, 3, 0.7],
    [700, 1, 0.5],
  ])('%i boxes in %i groups at IoU %f equal the float64 reference', async (n, groups, thr) => {
    const rt = await runtime();
    const { boxes, scores, idxs } = randomBoxes(n, groups, 1000 + n);
    const ref = batchedNmsRef(boxes, scores, groups > 1 ? idxs : null, thr);
    expect(ref.margin).toBeGreaterThan(1e-5);
    const keep = await nmsGpu(rt, boxes, scores, thr, groups > 1 ? { idxs } : {});
    expect(Array.from(keep)).toEqual(ref.keep);
  });

  it('a bitmask past the binding limit is built and swept in bands of rows', async () => {
    const rt = await runtime();
    const n = 333; // 11 words per row: 1452 bytes per 32 rows
    const { boxes, scores, idxs } = randomBoxes(n, 2, 6);
    const ref = batchedNmsRef(boxes, scores, idxs, 0.5);
    expect(ref.margin).toBeGreaterThan(1e-5);
    // 2 KiB bindings: bands of 32 rows (11 bands).
    const keep = await nmsGpu(rt, boxes, scores, 0.5, { idxs, maxBindingBytes: 2048 });
    expect(Array.from(keep)).toEqual(ref.keep);
  });

  it('refuses sizes past its workgroup bitmap, malformed boxes and negative thresholds', async () => {
    const rt = await runtime();
    const big = Tensor.zeros(rt, [4064 * 32 + 1, 4], 'f32');
    expect(() => nmsGpuRecord(big, 0.5)).toThrow(LimitError);
    big.dispose();
    const bad = Tensor.zeros(rt, [4, 3], 'f32');
    expect(() => nmsGpuRecord(bad, 0.5)).toThrow(ShapeError);
    bad.dispose();
    const ok = Tensor.zeros(rt, [4, 4], 'f32');
    expect(() => nmsGpuRecord(ok, -0.1)).toThrow(InputError);
    ok.dispose();
  });
});
