import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { rcnnBatchSize, rcnnResizeSize, rcnnTransform } from '../../src/nn/rcnn_transform.js';
import { bilinearRef } from '../../src/ref/resize.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { expectClose, randomArray, runtime, TOL } from '../helpers.js';

const MEAN: [number, number, number] = [0.485, 0.456, 0.406];
const STD: [number, number, number] = [0.229, 0.224, 0.225];

/** Float64 GeneralizedRCNNTransform: normalise, bilinear resize (f32 taps), zero-pad. */
function transformRef(images: { data: Float32Array; h: number; w: number }[], minSize: number, maxSize: number, div: number) {
  const sizes = images.map((im) => rcnnResizeSize(im.h, im.w, minSize, maxSize));
  const [hp, wp] = rcnnBatchSize(sizes, div);
  const out = new Float64Array(images.length * 3 * hp * wp);
  images.forEach((im, i) => {
    const normed = Float64Array.from(im.data, (v, j) => {
      const c = Math.floor(j / (im.h * im.w));
      return (v - Math.fround(MEAN[c])) / Math.fround(STD[c]);
    });
    const [h, w] = sizes[i];
    const r = bilinearRef(normed, [1, 3, im.h, im.w], h, w);
    for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[((i * 3 + c) * hp + y) * wp + x] = r[(c * h + y) * w + x];
  });
  return { out, sizes, shape: [images.length, 3, hp, wp] };
}

describe('rcnn_transform', () => {
  it('resized sizes follow the double-rounded scale (torch: reciprocal, then multiply)', () => {
    // 9x12 at min 15: s = f32(f32(1/9) * 15) = 1.6666666 -> 14x19 (a plain 15/9 gives 15x20).
    expect(rcnnResizeSize(9, 12, 15, 100)).toEqual([14, 19]);
    expect(rcnnResizeSize(21, 10, 7, 100)).toEqual([14, 6]);
    expect(rcnnResizeSize(9, 12, 16, 24)).toEqual([16, 21]);
    expect(rcnnResizeSize(21, 10, 16, 24)).toEqual([24, 11]);
    // The detector fixtures' images at 144/208.
    expect(rcnnResizeSize(160, 224, 144, 208)).toEqual([144, 201]);
    expect(rcnnResizeSize(96, 128, 144, 208)).toEqual([144, 192]);
    expect(rcnnBatchSize([[144, 201], [144, 192]], 32)).toEqual([160, 224]);
  });

  it.each([
    [[[9, 12], [21, 10]], 15, 100],
    [[[9, 12], [21, 10]], 16, 24],
    [[[40, 33]], 20, 30],
  ] as [[number, number][], number, number][])('images %j at min %i max %i match float64', async (hw, minSize, maxSize) => {
    const rt = await runtime();
    const images = hw.map(([h, w], i) => ({ data: randomArray(3 * h * w, 70 + i, 0, 1), h, w }));
    const r = rcnnTransform(images.map((im) => Tensor.from(rt, im.data, [3, im.h, im.w])), { minSize, maxSize, imageMean: MEAN, imageStd: STD, sizeDivisible: 32 });
    const ref = transformRef(images, minSize, maxSize, 32);
    expect(r.imageSizes).toEqual(ref.sizes);
    expect(r.batch.shape).toEqual(ref.shape);
    expectClose(await r.batch.toArray(), ref.out, { label: `transform ${JSON.stringify(hw)}`, relL2: TOL.reduction });
    r.batch.dispose();
  });

  it('rejects zero-size and non-RGB images', async () => {
    const rt = await runtime();
    const opts = { minSize: 8, maxSize: 16, imageMean: MEAN, imageStd: STD, sizeDivisible: 32 };
    expect(() => rcnnResizeSize(0, 5, 8, 16)).toThrow(InputError);
    expect(() => rcnnTransform([Tensor.zeros(rt, [1, 4, 4])], opts)).toThrow(ShapeError);
    expect(() => rcnnTransform([], opts)).toThrow(InputError);
  });
});
