// nn.Conv2d, the one every model builds from, and the convolution it runs.
//
// Feature maps too large for one storage binding: the SD 1.x VAE at 512x512 has
// [1, 256, 512, 512] f32 maps (256 MiB) and 128-channel ones whose padded copy exceeds
// 128 MiB, while nn/conv2d only splits along the batch. Such convolutions run in bands of
// output rows: window2d cuts each band's input rows (with halo and zero padding) out of
// the big tensor, conv2d runs on the band with padding 0, pasteInto2d writes the band
// back. Everything that fits (every UNet convolution) goes straight to conv2d.
import { LimitError, ShapeError, formatBytes } from '../../gpu/errors.js';
import { conv2d } from '../../nn/conv2d.js';
import type { Activation } from '../../nn/elementwise.js';
import { Module, Param } from '../../nn/module.js';
import { pad2d, pasteInto2d, window2d, type Pads } from '../../nn/pad.js';
import { scope } from '../../tensor/scope.js';
import { BYTES, Tensor } from '../../tensor/tensor.js';
import { moduleScope } from './module_scope.js';

export interface BandedConvOptions {
  stride?: number;
  /** [left, right, top, bottom] zero padding, asymmetric allowed (Downsample2D: 0,1,0,1). */
  pads: Pads;
  /** Fused after the bias. */
  activation?: Activation;
  /** Same shape as the output, added after the activation (ResnetBlock2D's shortcut). */
  residual?: Tensor;
  /** Output multiplied by 1/outputScale at the end (diffusers output_scale_factor). */
  outputScale?: number;
  /** @internal Tests: a binding limit below the adapter's, to force the row bands (the
   *  band-cutting copies obey it too; conv2d itself keeps the adapter's limit, which the
   *  weights must fit). */
  maxBindingBytes?: number;
}

/** Extra columns conv2d's padded copy may add (vec4 rows and the last quad's loads). */
const COPY_SLACK = 16;

/** y = (act(conv2d(pad(x, pads), weight, stride) + bias) + residual) / outputScale:
 *  x [N, Cin, H, W] -> [N, Cout, Ho, Wo], in row bands when one sample does not fit the
 *  binding limit. */
export function conv2dBanded(x: Tensor, weight: Tensor, bias: Tensor | undefined, opts: BandedConvOptions): Tensor {
  const stride = opts.stride ?? 1;
  const [left, right, top, bottom] = opts.pads;
  const [N, Cin, H, W] = x.shape;
  const [Cout, , KH, KW] = weight.shape;
  const Hp = H + top + bottom;
  const Wp = W + left + right;
  const Ho = Math.floor((Hp - KH) / stride) + 1;
  const Wo = Math.floor((Wp - KW) / stride) + 1;
  if (x.shape.length !== 4 || Ho < 1 || Wo < 1) throw new ShapeError(`conv2dBanded: x [${x.shape}] with weight [${weight.shape}] and pads [${opts.pads}] gives no output`);
  const rt = x.rt;
  const el = BYTES[x.dtype];
  const limit = opts.maxBindingBytes ?? rt.limits.maxStorageBufferBindingSize;
  // Per-sample budget as conv2d reckons it: an aligned range of whole samples.
  const budget = limit - rt.limits.minStorageBufferOffsetAlignment - 4;
  const inputBytes = (rows: number) => Cin * rows * (Wp + COPY_SLACK) * el;
  const outputBytes = (rows: number) => Cout * rows * Wo * el;
  const symmetric = left === right && top === bottom && left === top;
  const epilogue = { activation: opts.activation, outputScale: opts.outputScale };
  if (Cin * H * W * el <= budget && inputBytes(Hp) <= budget && outputBytes(Ho) <= budget) {
    const conv = (input: Tensor, padding: number) =>
      conv2d(input, weight, bias, { stride, padding, residual: opts.residual, ...epilogue });
    return symmetric ? conv(x, top) : scope(() => conv(pad2d(x, opts.pads, { maxBindingBytes: opts.maxBindingBytes }), 0));
  }
  const inRows = (rows: number) => (rows - 1) * stride + KH;
  let band = Ho;
  while (band > 0 && (inputBytes(inRows(band)) > budget || outputBytes(band) > budget)) band = Math.floor(band / 2);
  if (band < 1) {
    throw new LimitError(`conv2dBanded: one output row of x [${x.shape}] * weight [${weight.shape}] needs ${formatBytes(inputBytes(KH))} of input, more than the binding budget ${formatBytes(budget)} on ${rt.adapterName}`);
  }
  const y = Tensor.empty(rt, [N, Cout, Ho, Wo], x.dtype, 'conv2d_banded');
  const limits = { maxBindingBytes: opts.maxBindingBytes };
  for (let n = 0; n < N; n++) {
    for (let r0 = 0; r0 < Ho; r0 += band) {
      const rows = Math.min(band, Ho - r0);
      scope(() => {
        const input = window2d(x, r0 * stride - top, -left, inRows(rows), Wp, { batch: [n, 1], ...limits });
        const residual = opts.residual ? window2d(opts.residual, r0, 0, rows, Wo, { batch: [n, 1], ...limits }) : undefined;
        const out = conv2d(input, weight, bias, { stride, padding: 0, residual, ...epilogue });
        pasteInto2d(y, out, r0, 0, { batchStart: n, ...limits });
      });
    }
  }
  return y;
}

export interface Conv2dConfig {
  /** Default 1. */
  stride?: number;
  /** Symmetric zero padding, default 0 (torch's nn.Conv2d defaults). */
  padding?: number;
  /** Default true. */
  bias?: boolean;
}

/** Per-call options: the fused epilogue, and `pads` overriding the module's padding
 *  (diffusers' Downsample2D with padding 0 applies F.pad(x, (0, 1, 0, 1)) first). */
export type Conv2dRunOptions = Omit<BandedConvOptions, 'stride' | 'pads'> & { pads?: Pads };

/** nn.Conv2d(in, out, kernel, stride, padding, bias): weight [out, in, k, k], bias [out]. */
export class Conv2d extends Module {
  weight: Param;
  bias?: Param;
  readonly stride: number;
  readonly padding: number;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernel: number, cfg: Conv2dConfig = {}) {
    super();
    this.weight = new Param([outChannels, inChannels, kernel, kernel]);
    if (cfg.bias ?? true) this.bias = new Param([outChannels]);
    this.stride = cfg.stride ?? 1;
    this.padding = cfg.padding ?? 0;
  }

  /** x [B, in, H, W] -> [B, out, Ho, Wo], the epilogue fused. */
  forward(x: Tensor, opts: Conv2dRunOptions = {}): Tensor {
    const p = this.padding;
    return moduleScope(this, x.rt, () => conv2dBanded(x, this.weight.t, this.bias?.t, { ...opts, stride: this.stride, pads: opts.pads ?? [p, p, p, p] }));
  }
}
