// Batch norms of the detector, folded into the convolution before them at load.
// torchvision's FrozenBatchNorm2d (v1, eps 0 for the COCO_V1 weights: ops/misc.py) and
// BatchNorm2d in eval mode (v2, eps 1e-5) are the same per-channel affine map,
//   y = x * scale + shift,  scale = weight / sqrt(running_var + eps),
//                           shift = bias - running_mean * scale,
// so conv -> norm is one conv with weight[o] * scale[o] and bias shift[o] (+ the conv's
// own bias * scale[o]). scale and shift are computed in float64 on the host and rounded
// once; the weight product runs on the GPU (f32). BatchNorm2d's int64
// num_batches_tracked is not a parameter here: loaders ignore it by name.
import { WeightError } from '../../gpu/errors.js';
import { mul, type Activation } from '../../nn/elementwise.js';
import { Module, Param } from '../../nn/module.js';
import { Tensor } from '../../tensor/tensor.js';
import { conv2dBanded } from '../layers/conv.js';
import type { Conv2d } from '../layers/conv.js';
import { convAsMatmul } from './conv_rows.js';

/** FrozenBatchNorm2d / eval BatchNorm2d: weight, bias, running_mean, running_var [C]. */
export class FrozenBatchNorm2d extends Module {
  weight: Param;
  bias: Param;
  running_mean: Param;
  running_var: Param;
  constructor(readonly channels: number, readonly eps: number) {
    super();
    this.weight = new Param([channels]);
    this.bias = new Param([channels]);
    this.running_mean = new Param([channels], 'buffer');
    this.running_var = new Param([channels], 'buffer');
  }
}

/** State-dict names a loader skips: BatchNorm2d's step counter (int64, unused in eval). */
export const isNormCounter = (name: string): boolean => name.endsWith('.num_batches_tracked');

/** Largest H*W convolved as im2col + matmul (conv_rows.ts): 32x32. */
export const MATMUL_CONV_MAX_PIXELS = 1024;

/** A convolution with its norm folded in (not a Module: it owns GPU tensors that have no
 *  state-dict name). */
export class FoldedConv {
  constructor(
    readonly weight: Tensor,
    readonly bias: Tensor | undefined,
    readonly stride: number,
    readonly padding: number,
    /** Whether dispose() frees weight and bias (false when they are the conv's own). */
    private readonly owned: boolean,
  ) {}

  /** x [N, Cin, H, W] -> act(conv(x) + bias) + residual. Maps of at most
   *  MATMUL_CONV_MAX_PIXELS (the RoI heads', the backbone's last levels) run as a matmul. */
  forward(x: Tensor, opts: { activation?: Activation; residual?: Tensor } = {}): Tensor {
    const p = this.padding;
    const k = this.weight.shape[2];
    if (!opts.residual && this.stride === 1 && 2 * p + 1 === k && x.shape[2] * x.shape[3] <= MATMUL_CONV_MAX_PIXELS) {
      return convAsMatmul(x, this.weight, this.bias, { activation: opts.activation });
    }
    return conv2dBanded(x, this.weight, this.bias, { stride: this.stride, pads: [p, p, p, p], ...opts });
  }

  dispose(): void {
    if (!this.owned) return;
    this.weight.dispose();
    this.bias?.dispose();
  }
}

function take(p: Param): Tensor {
  const t = p.t;
  p.value = null;
  return t;
}

/** conv -> norm as one convolution. The conv's and the norm's parameters are released
 *  (their Params are emptied); without a norm the conv's own tensors are used as they are. */
export async function foldConvNorm(conv: Conv2d, norm: FrozenBatchNorm2d | null, where: string): Promise<FoldedConv> {
  if (!norm) return new FoldedConv(conv.weight.t, conv.bias?.t, conv.stride, conv.padding, false);
  if (norm.channels !== conv.outChannels) throw new WeightError(`${where}: norm over ${norm.channels} channels after a conv with ${conv.outChannels}`);
  const rt = conv.weight.t.rt;
  const [w, b, rm, rv] = await Promise.all([norm.weight, norm.bias, norm.running_mean, norm.running_var].map((p) => p.t.toArray()));
  const convBias = conv.bias ? await conv.bias.t.toArray() : null;
  const C = norm.channels;
  const scale = new Float32Array(C);
  const shift = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    const v = rv[c] + norm.eps;
    if (!(v > 0)) throw new WeightError(`${where}: running_var[${c}] + eps = ${v} is not positive; the norm divides by its square root (wrong checkpoint?)`);
    const s = w[c] / Math.sqrt(v);
    scale[c] = s;
    shift[c] = b[c] - rm[c] * s + (convBias ? convBias[c] * s : 0);
  }
  const weight = take(conv.weight);
  const scaleT = Tensor.from(rt, scale, [C, 1, 1, 1], 'f32', `${where}.scale`);
  const folded = mul(weight, scaleT);
  scaleT.dispose();
  weight.dispose();
  if (conv.bias) take(conv.bias).dispose();
  for (const p of [norm.weight, norm.bias, norm.running_mean, norm.running_var]) take(p).dispose();
  return new FoldedConv(folded, Tensor.from(rt, shift, [C], 'f32', `${where}.shift`), conv.stride, conv.padding, true);
}
