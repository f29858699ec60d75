import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { BBOX_XFORM_CLIP, boxArea, clipBoxesToImage, decodeBoxes, gatherRows, removeSmallBoxes, resizeBoxes } from '../../src/nn/boxes.js';
import { decodeBoxesRef } from '../../src/ref/boxes.js';
import { expectClose, randomArray, rng } from '../helpers.js';

// Host box ops in float32: each result within float32 rounding of the float64 formula
// (rel L2 1e-6: a handful of f32 roundings per coordinate); decisions exact.

describe('boxes', () => {
  it.each([
    [[1, 1, 1, 1], 1],
    [[10, 10, 5, 5], 91],
    [[10, 10, 5, 5], 3],
  ] as [[number, number, number, number], number][])('decode with weights %j, %i classes matches float64', (weights, classes) => {
    const r = rng(classes);
    const n = 57;
    const ref = new Float32Array(4 * n);
    for (let i = 0; i < n; i++) {
      const [x, y] = [300 * r(), 200 * r()];
      // One zero-width and one tiny reference box among them.
      const w = i === 0 ? 0 : i === 1 ? 1e-3 : 1 + 100 * r();
      ref.set([x, y, x + w, y + 1 + 80 * r()], 4 * i);
    }
    // Codes up to 3x the clip (x weight) so dw, dh above log(1000/16) are clipped.
    const codes = randomArray(4 * n * classes, classes + 7, -3 * weights[2] * BBOX_XFORM_CLIP / 2, 3 * weights[2] * BBOX_XFORM_CLIP / 2);
    const got = decodeBoxes(codes, ref, weights);
    expect(got.length).toBe(4 * n * classes);
    expectClose(got, decodeBoxesRef(codes, ref, weights, BBOX_XFORM_CLIP), { label: `decode ${weights}`, relL2: 1e-6 });
  });

  it('dw and dh above the clip decode as the clip itself', () => {
    const ref = [10, 20, 30, 50];
    const over = decodeBoxes([0, 0, 50, 9], ref, [1, 1, 1, 1]);
    const at = decodeBoxes([0, 0, Math.fround(BBOX_XFORM_CLIP), 9], ref, [1, 1, 1, 1]);
    expect(Array.from(over)).toEqual(Array.from(at));
    // exp(clip) = 62.5: a 20 px wide box becomes 1250 px about its centre x = 20.
    expect(over[2] - over[0]).toBeCloseTo(1250, 2);
  });

  it('clip, remove small boxes, area, resize, gather', () => {
    const boxes = Float32Array.from([-5, 3, 130, 95, 10, 10, 10.0005, 40, 1, 2, 3, 4, 50, 60, 50.02, 60.02]);
    expect(Array.from(clipBoxesToImage(boxes, [90, 120]))).toEqual([0, 3, 120, 90, 10, 10, 10.0005, 40, 1, 2, 3, 4, 50, 60, 50.02, 60.02].map(Math.fround));
    // Box 1 is 0.0005 wide (< 1e-3), box 3 is 0.02 (kept at 1e-2 and 1e-3).
    expect(Array.from(removeSmallBoxes(boxes, 1e-3))).toEqual([0, 2, 3]);
    expect(Array.from(removeSmallBoxes(boxes, 1e-2))).toEqual([0, 2, 3]);
    expect(Array.from(removeSmallBoxes(boxes, 0.03))).toEqual([0, 2]);
    expect(Array.from(boxArea(boxes.subarray(8, 12)))).toEqual([4]);
    // resize_boxes 14x19 -> 9x12: x * f32(12/19), y * f32(9/14).
    const rb = resizeBoxes([19, 14, 9.5, 7], [14, 19], [9, 12]);
    expect(Array.from(rb)).toEqual([Math.fround(19 * Math.fround(12 / 19)), Math.fround(14 * Math.fround(9 / 14)), Math.fround(9.5 * Math.fround(12 / 19)), Math.fround(7 * Math.fround(9 / 14))]);
    expect(Array.from(gatherRows([1, 2, 3, 4, 5, 6], [2, 0], 2))).toEqual([5, 6, 1, 2]);
  });

  it('rejects malformed inputs', () => {
    expect(() => decodeBoxes([0, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1])).toThrow(ShapeError);
    expect(() => decodeBoxes([0, 0, 0, 0], [0, 0, 1, 1], [1, 0, 1, 1])).toThrow(InputError);
    expect(() => clipBoxesToImage([1, 2, 3], [4, 4])).toThrow(ShapeError);
    expect(() => gatherRows([1, 2], [3], 2)).toThrow(ShapeError);
    expect(decodeBoxes([], [], [1, 1, 1, 1]).length).toBe(0);
  });
});
