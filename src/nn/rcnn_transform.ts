// torchvision's GeneralizedRCNNTransform at inference (0.14.1, detection/transform.py):
// normalise, resize by min/max size, batch with zero padding to a multiple of
// `sizeDivisible`. Inference only. The GPU work is existing kernels: the per-channel
// normalisation is a broadcast sub and div (shaders/elementwise.wgsl), the resize is
// resizeBilinear (shaders/resize.wgsl, whose taps are torch's: scale = in/out in float32,
// src = max((dst + 0.5) * scale - 0.5, 0), i1 = min(i0 + 1, in - 1)), the batch a zero
// tensor with each image pasted at the top left (shaders/pad.wgsl).
//
// Output size: torch evaluates `python_float / tensor` as reciprocal(tensor) * python_float,
// so s = min(f32(f32(1 / f32(min(H, W))) * min_size), f32(f32(1 / f32(max(H, W))) * max_size)),
// and F.interpolate(scale_factor=s, recompute_scale_factor=True) gives floor(H * s) with
// s widened to float64. The double rounding lands some sizes one pixel short of the plain
// quotient (9x12 at min_size 15 gives 14x19, not 15x20).
import { InputError, ShapeError } from '../gpu/errors.js';
import { Tensor } from '../tensor/tensor.js';
import { scope } from '../tensor/scope.js';
import { binary } from './elementwise.js';
import { pasteInto2d } from './pad.js';
import { resizeBilinear } from './resize.js';

const fr = Math.fround;

export interface RcnnTransformOptions {
  minSize: number;
  maxSize: number;
  imageMean: readonly [number, number, number];
  imageStd: readonly [number, number, number];
  /** Batch padding multiple (torchvision: 32). */
  sizeDivisible: number;
}

/** The resized (h, w) of an H x W image (see the header for the rounding). */
export function rcnnResizeSize(h: number, w: number, minSize: number, maxSize: number): [number, number] {
  if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) throw new InputError(`image size ${h}x${w}: must be positive integers (a zero-size image cannot be detected on)`);
  if (!(minSize > 0 && maxSize > 0)) throw new InputError(`min_size ${minSize} and max_size ${maxSize} must be positive`);
  const byMin = fr(fr(1 / fr(Math.min(h, w))) * fr(minSize));
  const byMax = fr(fr(1 / fr(Math.max(h, w))) * fr(maxSize));
  const s = Math.min(byMin, byMax);
  return [Math.floor(h * s), Math.floor(w * s)];
}

/** The padded batch size (H, W) for images of the given resized sizes. */
export function rcnnBatchSize(sizes: readonly (readonly [number, number])[], sizeDivisible: number): [number, number] {
  const up = (v: number) => Math.ceil(v / sizeDivisible) * sizeDivisible;
  return [up(Math.max(...sizes.map((s) => s[0]))), up(Math.max(...sizes.map((s) => s[1])))];
}

export interface RcnnTransformResult {
  /** [N, 3, Hpad, Wpad] f32, zero outside each image. */
  batch: Tensor;
  /** (h, w) of each resized image, the `image_sizes` of torchvision's ImageList. */
  imageSizes: [number, number][];
}

/**
 * Normalises, resizes and batches `images` ([3, H, W] or [1, 3, H, W] float tensors in
 * [0, 1], sizes may differ). The inputs are not consumed.
 */
export function rcnnTransform(images: readonly Tensor[], opts: RcnnTransformOptions): RcnnTransformResult {
  if (images.length === 0) throw new InputError('rcnnTransform: needs at least one image');
  if (!(Number.isInteger(opts.sizeDivisible) && opts.sizeDivisible > 0)) throw new InputError(`rcnnTransform: size_divisible ${opts.sizeDivisible} must be a positive integer`);
  const rt = images[0].rt;
  const shapes = images.map((im, i) => {
    const s = im.shape.length === 4 && im.shape[0] === 1 ? im.shape.slice(1) : im.shape;
    if (s.length !== 3 || s[0] !== 3) throw new ShapeError(`rcnnTransform: image ${i} must be [3, H, W] (RGB), got [${im.shape}]`);
    if (im.dtype !== 'f32') throw new ShapeError(`rcnnTransform: image ${i} must be f32, got ${im.dtype}`);
    return [s[1], s[2]] as [number, number];
  });
  const imageSizes = shapes.map(([h, w]) => rcnnResizeSize(h, w, opts.minSize, opts.maxSize));
  const [hp, wp] = rcnnBatchSize(imageSizes, opts.sizeDivisible);
  const batch = Tensor.zeros(rt, [images.length, 3, hp, wp], 'f32', 'rcnn_batch');
  scope(() => {
    const mean = Tensor.from(rt, opts.imageMean.map(fr), [1, 3, 1, 1], 'f32', 'image_mean');
    const std = Tensor.from(rt, opts.imageStd.map(fr), [1, 3, 1, 1], 'f32', 'image_std');
    images.forEach((im, i) => {
      const x = im.reshape([1, 3, shapes[i][0], shapes[i][1]]);
      const normed = binary(binary(x, mean, 'sub'), std, 'div');
      pasteInto2d(batch, resizeBilinear(normed, imageSizes[i][0], imageSizes[i][1]), 0, 0, { batchStart: i });
    });
  });
  return { batch, imageSizes };
}
