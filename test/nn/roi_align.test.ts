import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { inferScale, mapLevels, multiScaleRoiAlign, roiAlign, roiGeometry, type RoiAlignOptions } from '../../src/nn/roi_align.js';
import { multiScaleRoiAlignRef, roiAlignRef } from '../../src/ref/roi_align.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { expectClose, randomArray, randomTensor, requireF16, rng, runtime, TOL } from '../helpers.js';

// Tolerance: TOL.reduction (rel L2 1e-5). The kernel gets torchvision's f32 taps and
// weights bit for bit; each output is an f32 sum of up to grid_h * grid_w 4-tap samples,
// against the float64 sum of the same samples.

/** K RoIs over an image of (h, w) feature pixels at `scale`: random boxes that reach past
 *  every border, plus the edge cases: inverted, fully outside, sub-pixel, the whole map,
 *  samples in (-1, 0), and a box ending exactly on the right edge. */
function makeRois(k: number, n: number, h: number, w: number, scale: number, seed: number): Float32Array {
  const r = rng(seed);
  const [iw, ih] = [w / scale, h / scale];
  const fixed = [
    [0, 0.7 * iw, 0.6 * ih, 0.2 * iw, 0.1 * ih], // inverted (x2 < x1)
    [n - 1, 1.5 * iw, 1.2 * ih, 2 * iw, 1.9 * ih], // fully outside
    [0, 0.31 * iw, 0.42 * ih, 0.31 * iw + 0.2 / scale, 0.42 * ih + 0.3 / scale], // sub-pixel
    [n - 1, 0, 0, iw, ih], // the whole map
    [0, -0.9 / scale, -0.6 / scale, 0.4 * iw, 0.5 * ih], // samples in (-1, 0)
    [n - 1, 0.5 * iw, 0.25 * ih, iw, ih], // to the right and bottom edges
  ];
  const rows: number[][] = fixed.slice(0, k);
  while (rows.length < k) {
    const x1 = (1.4 * r() - 0.2) * iw;
    const y1 = (1.4 * r() - 0.2) * ih;
    rows.push([Math.floor(n * r()), x1, y1, x1 + (0.05 + 0.9 * r()) * iw, y1 + (0.05 + 0.9 * r()) * ih]);
  }
  return Float32Array.from(rows.flat());
}

describe('roi_align', () => {
  // (input shape, output size, spatial scale, sampling ratio, aligned, K)
  const cases: [number[], [number, number], number, number, boolean, number][] = [
    [[2, 3, 13, 17], [7, 7], 0.25, 2, false, 11],
    [[2, 3, 13, 17], [7, 7], 0.25, 2, true, 11],
    [[2, 3, 13, 17], [5, 3], 0.25, -1, false, 11],
    [[2, 3, 13, 17], [5, 3], 0.25, -1, true, 11],
    [[1, 5, 9, 14], [14, 14], 0.5, 2, false, 7],
    [[3, 2, 11, 6], [4, 4], 1, 0, true, 9],
    [[2, 4, 31, 23], [7, 7], 0.125, 3, false, 13],
  ];

  it.each(cases)('%j -> %j scale %f ratio %i aligned %s matches float64', async (shape, out, scale, ratio, aligned, k) => {
    const rt = await runtime();
    const x = randomTensor(rt, shape, 21);
    const rois = makeRois(k, shape[0], shape[2], shape[3], scale, k + ratio);
    const opts: RoiAlignOptions = { outputSize: out, spatialScale: scale, samplingRatio: ratio, aligned };
    const y = roiAlign(x.t, rois, opts);
    expect(y.shape).toEqual([k, shape[1], out[0], out[1]]);
    const ref = roiAlignRef(x.data, shape, rois, { outputSize: out, spatialScale: scale, samplingRatio: ratio, aligned });
    const got = await y.toArray();
    expectClose(got, ref, { label: `roi_align ${shape} ${out}`, relL2: TOL.reduction });
    // The edge cases: an aligned inverted box samples nothing (0), a box outside the map
    // reads 0 everywhere.
    const per = shape[1] * out[0] * out[1];
    if (aligned && ratio <= 0) expect(Array.from(got.subarray(0, per)).every((v) => v === 0)).toBe(true);
    expect(Array.from(got.subarray(per, 2 * per)).every((v) => v === 0)).toBe(true);
    x.t.dispose();
    y.dispose();
  });

  it('per-image box lists give the same result as [K, 5] rows', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [2, 2, 10, 12], 22);
    const a = Float32Array.from([2, 3, 30, 25, 0, 0, 40, 40]);
    const b = Float32Array.from([5, 6, 20, 30]);
    const opts: RoiAlignOptions = { outputSize: 3, spatialScale: 0.25, samplingRatio: 2, aligned: false };
    const lists = await roiAlign(x.t, [b, a], opts).toArray();
    const flat = await roiAlign(x.t, Float32Array.from([0, 5, 6, 20, 30, 1, 2, 3, 30, 25, 1, 0, 0, 40, 40]), opts).toArray();
    expect(Array.from(lists)).toEqual(Array.from(flat));
  });

  it('geometry follows torchvision: grid = ceil(bin) in f32, sample clamping, count', () => {
    // roi_h = 14 feature pixels into 7 bins: bin 2.0 exactly, adaptive grid 2 (not 3).
    const g = roiGeometry([0, 0, 28, 56], 20, 20, 7, 7, { outputSize: 7, spatialScale: 0.25, samplingRatio: -1, aligned: false });
    expect([g.gridH, g.gridW, g.count]).toEqual([2, 1, 2]);
    // Samples past the last row read it (low = high = H - 1, l = 0); outside [-1, H]: marked.
    const opts = { outputSize: 2, spatialScale: 1, samplingRatio: 2, aligned: false };
    // x from 10 to 20.5: the last sample, 19.1875, is past W - 1 = 19.
    expect(roiGeometry([10, 0, 20.5, 4], 20, 20, 2, 2, opts).xs.slice(-1)[0]).toEqual({ low: 19, high: 19, l: 0, h: 1 });
    // x from 15 to 25: samples 21.25 and 23.75 lie past W = 20.
    expect(roiGeometry([15, 0, 25, 4], 20, 20, 2, 2, opts).xs.map((t) => t.low === 0xffffffff)).toEqual([false, false, true, true]);
  });

  it('forced small bindings: one image and a window of RoI rows per dispatch', async () => {
    const rt = await runtime();
    const shape = [3, 4, 9, 11]; // 1584 bytes per image
    const x = randomTensor(rt, shape, 23);
    const rois = makeRois(20, 3, 9, 11, 0.5, 24);
    const opts: RoiAlignOptions = { outputSize: [3, 4], spatialScale: 0.5, samplingRatio: 2, aligned: false };
    const whole = await roiAlign(x.t, rois, opts).toArray();
    // 2 KiB: the feature map (4752 B) goes per image, the output (20 x 192 B) in windows of 9 rows.
    const split = await roiAlign(x.t, rois, { ...opts, maxBindingBytes: 2048 }).toArray();
    expect(Array.from(split)).toEqual(Array.from(whole));
    expectClose(split, roiAlignRef(x.data, shape, rois, { outputSize: [3, 4], spatialScale: 0.5, samplingRatio: 2, aligned: false }), {
      label: 'roi_align split', relL2: TOL.reduction,
    });
  });

  it('more than 65535 workgroups: the grid folds into 2-D', async () => {
    const rt = await runtime();
    // 340 RoIs x 64 channels x 28 x 28 = 17.1 M threads = 66 800 workgroups of 256.
    const shape = [1, 64, 12, 12];
    const x = randomTensor(rt, shape, 25);
    const rois = makeRois(340, 1, 12, 12, 1, 26);
    const opts = { outputSize: [28, 28] as [number, number], spatialScale: 1, samplingRatio: 1, aligned: true };
    expect(rt.grid(Math.ceil((340 * 64 * 28 * 28) / 256))[1]).toBeGreaterThan(1);
    const y = roiAlign(x.t, rois, opts);
    expectClose(await y.toArray(), roiAlignRef(x.data, shape, rois, opts), { label: 'roi_align folded', relL2: TOL.reduction });
    x.t.dispose();
    y.dispose();
  });

  it('f16 feature maps', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const shape = [1, 3, 8, 8];
    const data = randomArray(192, 27);
    const x = Tensor.from(rt, data, shape, 'f16');
    const rois = makeRois(6, 1, 8, 8, 0.5, 28);
    const opts = { outputSize: [2, 3] as [number, number], spatialScale: 0.5, samplingRatio: 2, aligned: false };
    const y = roiAlign(x, rois, opts);
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), roiAlignRef(await x.toArray(), shape, rois, opts), { label: 'roi_align f16', relL2: TOL.f16 });
  });

  it('rejects bad batch indices, shapes and options', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [1, 1, 4, 4], 29).t;
    const opts: RoiAlignOptions = { outputSize: 2, spatialScale: 1, samplingRatio: 2, aligned: false };
    expect(() => roiAlign(x, [1, 0, 0, 2, 2], opts)).toThrow(InputError);
    expect(() => roiAlign(x, [0, 0, 0, 2], opts)).toThrow(ShapeError);
    expect(() => roiAlign(x, [0, 0, 0, 2, 2], { ...opts, outputSize: 0 })).toThrow(InputError);
    expect(() => roiAlign(x.reshape([1, 16]), [0, 0, 0, 2, 2], opts)).toThrow(ShapeError);
  });
});

describe('multiscale roi_align', () => {
  it('level mapper: sqrt(area) of exactly 56, 112, 224, 448 land on levels 2..5 (eps decides)', () => {
    const sides = [56, 112, 224, 448, 111.9, 112.1, 4, 2000];
    const boxes = Float32Array.from(sides.flatMap((s) => [10, 20, 10 + s, 20 + s]));
    expect(Array.from(mapLevels(boxes, 2, 5))).toEqual([0, 1, 2, 3, 0, 1, 0, 3]);
    expect([inferScale(32, 128), inferScale(16, 128), inferScale(5, 150), inferScale(3, 160)]).toEqual([0.25, 0.125, 0.03125, 0.015625]);
  });

  it.each([7, 14])('4 levels, 2 images, output size %i: matches float64 (levels and scales exact)', async (size) => {
    const rt = await runtime();
    const shapes = [[2, 3, 32, 40], [2, 3, 16, 20], [2, 3, 8, 10], [2, 3, 4, 5]];
    const feats = shapes.map((s, i) => randomTensor(rt, s, 30 + i));
    const r = rng(34);
    // Image sizes (128, 150) and (100, 160): scales 1/4 .. 1/32; boxes of every level, on
    // the level boundaries (image 0: squares; image 1: area 1.04 s^2, clear of them), and
    // past the image.
    const sides = [56, 112, 224, 448, 20, 700, 150];
    const boxes = [0, 1].map((img) => Float32Array.from(sides.flatMap((s) => {
      const [x, y] = [160 * r() - 20, 128 * r() - 20];
      return [x, y, x + s * (img === 0 ? 1 : 0.8), y + s * (img === 0 ? 1 : 1.3)];
    })));
    const sizes: [number, number][] = [[128, 150], [100, 160]];
    const res = multiScaleRoiAlign(feats.map((f) => f.t), boxes, sizes, { outputSize: size, samplingRatio: 2 });
    const ref = multiScaleRoiAlignRef(feats.map((f, i) => ({ data: f.data, shape: shapes[i] })), boxes, sizes, [size, size], 2);
    expect(res.scales).toEqual(ref.scales);
    expect(Array.from(res.levels)).toEqual(ref.levels);
    expect(new Set(res.levels).size).toBe(4);
    expectClose(await res.output.toArray(), ref.out, { label: `msra ${size}`, relL2: TOL.reduction });
    res.output.dispose();
  });

  it('forced small bindings (level 0 bound per image) give the same output', async () => {
    const rt = await runtime();
    const shapes = [[2, 2, 16, 16], [2, 2, 8, 8]];
    const feats = shapes.map((s, i) => randomTensor(rt, s, 40 + i).t);
    const boxes = [Float32Array.from([0, 0, 20, 20, 5, 5, 60, 60, 1, 1, 3, 3]), Float32Array.from([10, 10, 64, 64])];
    const sizes: [number, number][] = [[64, 64], [64, 64]];
    const a = await multiScaleRoiAlign(feats, boxes, sizes, { outputSize: 3, samplingRatio: 2 }).output.toArray();
    const b = await multiScaleRoiAlign(feats, boxes, sizes, { outputSize: 3, samplingRatio: 2, maxBindingBytes: 2304 }).output.toArray();
    expect(Array.from(b)).toEqual(Array.from(a));
  });
});
