import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { pasteBoxes, pasteMasksInImage } from '../../src/nn/mask_paste.js';
import { pasteBoxRef, pasteMasksRef } from '../../src/ref/mask_paste.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { expectClose, randomArray, randomTensor, requireF16, rng, runtime, TOL } from '../helpers.js';

// Tolerance: TOL.elementwise (rel L2 1e-6): each pixel is a 4-tap f32 interpolation with
// torch's f32 taps, against the float64 interpolation of the same taps.

/** Boxes on an h x w image: inside, crossing every border, sub-pixel, covering, larger
 *  than the image, integer coordinates, x1 = -0.6, then random ones. */
function makeBoxes(k: number, h: number, w: number, seed: number): Float32Array {
  const r = rng(seed);
  const fixed = [
    [0.2 * w, 0.3 * h, 0.6 * w, 0.7 * h],
    [-0.2 * w, -0.1 * h, 0.3 * w, 0.4 * h],
    [0.7 * w, 0.6 * h, 1.3 * w, 1.2 * h],
    [0.41 * w, 0.52 * h, 0.41 * w + 0.3, 0.52 * h + 0.2],
    [0, 0, w, h],
    [-0.5 * w, -0.5 * h, 1.5 * w, 1.5 * h],
    [3, 4, 17, 12],
    [-0.6, 2.5, 8.4, 9.5],
  ];
  const rows = fixed.slice(0, k);
  while (rows.length < k) {
    const [x, y] = [1.2 * w * r() - 0.1 * w, 1.2 * h * r() - 0.1 * h];
    rows.push([x, y, x + (0.05 + 0.6 * r()) * w, y + (0.05 + 0.6 * r()) * h]);
  }
  return Float32Array.from(rows.flat());
}

describe('mask_paste', () => {
  it('paste boxes: (M + 2p) / M expansion in f32, truncation toward zero', () => {
    // M = 28: scale 30/28. Box [-0.6, 2.5, 8.4, 9.5]: half sizes 4.5 and 3.5 times 30/28,
    // centre (3.9, 6): (-0.92, 2.25, 8.72, 9.75) -> (0, 2, 8, 9).
    expect(Array.from(pasteBoxes([-0.6, 2.5, 8.4, 9.5], 28))).toEqual([0, 2, 8, 9]);
    // Truncation toward zero: x0' = -0.33 becomes 0, x0' = -1.24 becomes -1.
    const b = Float32Array.from([-0.28, 0, 1, 1, -1.2, 0, -0.2, 1]);
    const got = Array.from(pasteBoxes(b, 28));
    expect(got).toEqual([...pasteBoxRef(b.subarray(0, 4), 28, 1), ...pasteBoxRef(b.subarray(4), 28, 1)]);
    expect(got[0]).toBe(0);
    expect(got[4]).toBe(-1);
  });

  // (N, M, image h, w, padding)
  const cases: [number, number, number, number, number][] = [
    [8, 28, 37, 53, 1],
    [3, 14, 37, 53, 1],
    [11, 28, 64, 48, 1],
    [5, 7, 19, 23, 2],
    [4, 28, 30, 30, 0],
  ];

  it.each(cases)('%i masks of %i px on %ix%i (padding %i) match float64', async (n, m, h, w, pad) => {
    const rt = await runtime();
    const masks = randomTensor(rt, [n, 1, m, m], n + m, 0.01, 1);
    const boxes = makeBoxes(n, h, w, n + h);
    const r = pasteMasksInImage(masks.t, boxes, [h, w], pad);
    expect(r.masks.shape).toEqual([n, 1, h, w]);
    const ref = pasteMasksRef(masks.data, n, m, boxes, h, w, pad);
    expectClose(await r.masks.toArray(), ref, { label: `paste ${n}x${m} on ${h}x${w}`, relL2: TOL.elementwise });
    for (let k = 0; k < n; k++) expect(Array.from(r.pasteBoxes.subarray(4 * k, 4 * k + 4))).toEqual(pasteBoxRef(boxes.subarray(4 * k, 4 * k + 4), m, pad));
    masks.t.dispose();
    r.masks.dispose();
  });

  it('past the binding limit and 65535 workgroups: runs of masks, folded grid', async () => {
    const rt = await runtime();
    // 33 canvases of 1024 x 1024 f32 = 132 MiB > 128 MiB: two runs; a run of 32 canvases is
    // 33.5 M pixels = 131 072 workgroups of 256.
    const [n, m, h, w] = [33, 28, 1024, 1024];
    const masks = randomTensor(rt, [n, 1, m, m], 61, 0.01, 1);
    const boxes = makeBoxes(n, h, w, 62);
    const r = pasteMasksInImage(masks.t, boxes, [h, w]);
    expect(r.masks.bytes).toBeGreaterThan(rt.limits.maxStorageBufferBindingSize);
    expect(rt.grid(Math.ceil((32 * h * w) / 256))[1]).toBeGreaterThan(1);
    expectClose(await r.masks.toArray(), pasteMasksRef(masks.data, n, m, boxes, h, w), { label: 'paste 33 x 1024^2', relL2: TOL.elementwise });
    masks.t.dispose();
    r.masks.dispose();
  });

  it('[N, M, M] masks and no masks at all', async () => {
    const rt = await runtime();
    const masks = randomTensor(rt, [2, 6, 6], 63, 0.01, 1);
    const boxes = makeBoxes(2, 10, 12, 64);
    const r = pasteMasksInImage(masks.t, boxes, [10, 12]);
    expectClose(await r.masks.toArray(), pasteMasksRef(masks.data, 2, 6, boxes, 10, 12), { label: '[N,M,M]', relL2: TOL.elementwise });
    const none = pasteMasksInImage(Tensor.zeros(rt, [0, 1, 28, 28]), [], [10, 12]);
    expect(none.masks.shape).toEqual([0, 1, 10, 12]);
  });

  it('f16 masks', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const data = randomArray(3 * 28 * 28, 65, 0.01, 1);
    const masks = Tensor.from(rt, data, [3, 1, 28, 28], 'f16');
    const boxes = makeBoxes(3, 20, 24, 66);
    const r = pasteMasksInImage(masks, boxes, [20, 24]);
    expect(r.masks.dtype).toBe('f16');
    expectClose(await r.masks.toArray(), pasteMasksRef(await masks.toArray(), 3, 28, boxes, 20, 24), { label: 'paste f16', relL2: TOL.f16 });
  });

  it('rejects bad shapes and options', async () => {
    const rt = await runtime();
    const masks = randomTensor(rt, [2, 1, 4, 4], 67).t;
    expect(() => pasteMasksInImage(masks, [0, 0, 1, 1], [5, 5])).toThrow(ShapeError);
    expect(() => pasteMasksInImage(masks.reshape([2, 2, 2, 4]), [0, 0, 1, 1, 0, 0, 1, 1], [5, 5])).toThrow(ShapeError);
    expect(() => pasteMasksInImage(masks, [0, 0, 1, 1, 0, 0, 1, 1], [0, 5])).toThrow(InputError);
    expect(() => pasteMasksInImage(masks, [0, 0, 1, 1, 0, 0, Infinity, 1], [5, 5])).toThrow(InputError);
  });
});
