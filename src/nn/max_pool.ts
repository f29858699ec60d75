// 2-D max pooling, F.max_pool2d(x, kernel_size, stride, padding) with dilation 1 and
// ceil_mode False: FPN's LastLevelMaxPool (kernel 1, stride 2) and ResNet's stem pool
// (3x3, stride 2, padding 1). Inference only. Tensors past the binding limit are processed
// in runs of whole planes. Kernel: shaders/max_pool.wgsl.
import { InputError, ShapeError } from '../gpu/errors.js';
import { BYTES, Tensor } from '../tensor/tensor.js';
import { bindingRuns, runBinding } from './layout.js';

const WG = 256;

export interface MaxPool2dOptions {
  /** Window (kh, kw), or one size for both. */
  kernelSize: number | readonly [number, number];
  /** Default: the kernel size (torch's default). */
  stride?: number | readonly [number, number];
  /** -inf padding on each side, at most half the kernel (default 0). */
  padding?: number | readonly [number, number];
}

const pair = (v: number | readonly [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

/** torch's output size floor((in + 2p - k) / s) + 1 along one axis. */
export function maxPoolOutSize(size: number, k: number, s: number, p: number): number {
  return Math.floor((size + 2 * p - k) / s) + 1;
}

/** [N, C, H, W] -> [N, C, Ho, Wo], Ho = floor((H + 2p - k) / s) + 1. Inference only. */
export function maxPool2d(x: Tensor, opts: MaxPool2dOptions): Tensor {
  if (x.shape.length !== 4) throw new ShapeError(`maxPool2d: expects [N, C, H, W], got [${x.shape}]`);
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new ShapeError(`maxPool2d: needs a float tensor, got ${x.dtype}`);
  const [n, c, h, w] = x.shape;
  const [kh, kw] = pair(opts.kernelSize);
  const [sh, sw] = pair(opts.stride ?? opts.kernelSize);
  const [ph, pw] = pair(opts.padding ?? 0);
  const ints = [kh, kw, sh, sw].every((v) => Number.isInteger(v) && v > 0) && [ph, pw].every((v) => Number.isInteger(v) && v >= 0);
  if (!ints) throw new InputError(`maxPool2d: kernel ${kh}x${kw}, stride ${sh}x${sw} must be positive integers and padding ${ph}x${pw} non-negative`);
  if (2 * ph > kh || 2 * pw > kw) throw new InputError(`maxPool2d: padding ${ph}x${pw} must be at most half the kernel ${kh}x${kw} (as torch requires)`);
  const oh = maxPoolOutSize(h, kh, sh, ph);
  const ow = maxPoolOutSize(w, kw, sw, pw);
  if (oh < 1 || ow < 1) throw new InputError(`maxPool2d: a ${h}x${w} input is smaller than the ${kh}x${kw} window (padding ${ph}x${pw})`);
  const y = Tensor.empty(x.rt, [n, c, oh, ow], x.dtype, 'max_pool2d');
  if (y.size === 0) return y;
  const bytes = BYTES[x.dtype];
  const rt = x.rt;
  for (const run of bindingRuns(rt, n * c, [h * w * bytes, oh * ow * bytes], 'maxPool2d')) {
    const threads = run.count * oh * ow;
    rt.dispatch(
      { family: 'max_pool', entry: 'max_pool_forward', dtype: x.dtype, overrides: { WG } },
      {
        params: [threads, h, w, oh, ow, kh, kw, sh, sw, ph, pw],
        bindings: [runBinding(x, run, h * w), runBinding(y, run, oh * ow)],
        workgroups: Math.ceil(threads / WG),
        label: `max_pool_forward[k=${kh}x${kw},s=${sh}x${sw},p=${ph}x${pw}]`,
      },
    );
  }
  return y;
}
