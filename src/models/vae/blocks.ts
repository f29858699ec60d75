// The SD 1.x VAE's building blocks, mirroring diffusers v0.25.1 (resnet.py ResnetBlock2D
// without a time embedding, Downsample2D/Upsample2D, unet_2d_blocks.py DownEncoderBlock2D,
// UpDecoderBlock2D, UNetMidBlock2D, attention_processor.py Attention with AttnProcessor).
// Field names are the weight names. Every block takes x [B, C, H, W] and returns NCHW.
import { LimitError } from '../../gpu/errors.js';
import { attention } from '../../nn/attention.js';
import { add } from '../../nn/elementwise.js';
import { groupNorm } from '../../nn/group_norm.js';
import { copyInto, slice } from '../../nn/layout.js';
import { matmul } from '../../nn/matmul.js';
import { Module, Param } from '../../nn/module.js';
import { upsampleNearest2x } from '../../nn/resize.js';
import { softmax } from '../../nn/softmax.js';
import { scope } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';
import { conv2dBanded } from './banded.js';

/** Options every block forward takes. */
export interface BlockOptions {
  /** @internal Tests: a binding limit below the adapter's, forcing row-banded convolutions
   *  and row-chunked attention. */
  maxBindingBytes?: number;
  /** @internal Tests: the matmul-softmax-matmul attention even where the fused kernel fits. */
  unfusedAttention?: boolean;
}

/** diffusers builds every VAE norm with eps 1e-6 (resnet_eps, the encoder/decoder norm_out). */
export const VAE_EPS = 1e-6;
/** The fused attention kernel keeps a head in registers up to this size (nn/attention.ts). */
const FUSED_MAX_HEAD_DIM = 160;

export class GroupNorm extends Module {
  weight: Param;
  bias: Param;
  constructor(channels: number, readonly groups: number, readonly eps = VAE_EPS) {
    super();
    this.weight = new Param([channels]);
    this.bias = new Param([channels]);
  }
  forward(x: Tensor, activation: 'none' | 'silu' = 'none'): Tensor {
    return groupNorm(x, this.groups, this.weight.t, this.bias.t, this.eps, activation);
  }
}

export class Conv2d extends Module {
  weight: Param;
  bias: Param;
  constructor(inC: number, outC: number, readonly kernel: number) {
    super();
    this.weight = new Param([outC, inC, kernel, kernel]);
    this.bias = new Param([outC]);
  }
  /** Symmetric "same" padding (kernel 3: 1, kernel 1: 0) unless pads are given. */
  forward(x: Tensor, opts: BlockOptions & { stride?: number; pads?: [number, number, number, number]; residual?: Tensor } = {}): Tensor {
    const p = (this.kernel - 1) / 2;
    return conv2dBanded(x, this.weight.t, this.bias.t, {
      stride: opts.stride, pads: opts.pads ?? [p, p, p, p], residual: opts.residual, maxBindingBytes: opts.maxBindingBytes,
    });
  }
}

export class Linear extends Module {
  weight: Param;
  bias: Param;
  constructor(inF: number, outF: number) {
    super();
    this.weight = new Param([outF, inF]);
    this.bias = new Param([outF]);
  }
}

/** ResnetBlock2D with temb_channels=None: norm1 -> SiLU -> conv1 -> norm2 -> SiLU ->
 *  conv2, plus the input (through a 1x1 conv_shortcut when the channel count changes);
 *  output_scale_factor 1, dropout inactive in eval. */
export class ResnetBlock2D extends Module {
  norm1: GroupNorm;
  conv1: Conv2d;
  norm2: GroupNorm;
  conv2: Conv2d;
  conv_shortcut?: Conv2d;
  constructor(inC: number, outC: number, groups: number) {
    super();
    this.norm1 = new GroupNorm(inC, groups);
    this.conv1 = new Conv2d(inC, outC, 3);
    this.norm2 = new GroupNorm(outC, groups);
    this.conv2 = new Conv2d(outC, outC, 3);
    if (inC !== outC) this.conv_shortcut = new Conv2d(inC, outC, 1);
  }
  forward(x: Tensor, opts: BlockOptions = {}): Tensor {
    return scope(() => {
      const h = this.conv1.forward(this.norm1.forward(x, 'silu'), opts);
      const shortcut = this.conv_shortcut ? this.conv_shortcut.forward(x, opts) : x;
      return this.conv2.forward(this.norm2.forward(h, 'silu'), { ...opts, residual: shortcut });
    });
  }
}

/** Downsample2D(use_conv=True, padding=0): F.pad(x, (0, 1, 0, 1)) then a 3x3 conv with
 *  stride 2 and no padding (the pad is folded into the convolution's input window). */
export class Downsample2D extends Module {
  conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = new Conv2d(channels, channels, 3);
  }
  forward(x: Tensor, opts: BlockOptions = {}): Tensor {
    return this.conv.forward(x, { ...opts, stride: 2, pads: [0, 1, 0, 1] });
  }
}

/** Upsample2D(use_conv=True): nearest x2, then a 3x3 conv with padding 1. */
export class Upsample2D extends Module {
  conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = new Conv2d(channels, channels, 3);
  }
  forward(x: Tensor, opts: BlockOptions = {}): Tensor {
    return scope(() => this.conv.forward(upsampleNearest2x(x), opts));
  }
}

/**
 * diffusers Attention as UNetMidBlock2D builds it for the VAE: one head of size C, group
 * norm (eps 1e-6), Linear to_q/to_k/to_v/to_out.0 over the H*W tokens, softmax in f32,
 * residual connection, rescale_output_factor 1.
 */
export class Attention extends Module {
  group_norm: GroupNorm;
  to_q: Linear;
  to_k: Linear;
  to_v: Linear;
  to_out: [Linear];
  constructor(readonly channels: number, groups: number) {
    super();
    this.group_norm = new GroupNorm(channels, groups);
    this.to_q = new Linear(channels, channels);
    this.to_k = new Linear(channels, channels);
    this.to_v = new Linear(channels, channels);
    this.to_out = [new Linear(channels, channels)];
  }

  forward(x: Tensor, opts: BlockOptions = {}): Tensor {
    const [B, C, H, W] = x.shape;
    const L = H * W;
    return scope(() => {
      // Tokens are the columns of [B, C, L]: transA reads them as rows without a permute.
      const hs = this.group_norm.forward(x).reshape([B, C, L]);
      const project = (lin: Linear) => matmul(hs, lin.weight.t, { transA: true, transB: true, bias: lin.bias.t });
      const attn = this.attend(project(this.to_q), project(this.to_k), project(this.to_v), opts);
      // to_out back in channel-major order: [C, C] x attn^T = [B, C, L]; its bias is per
      // row there, so it rides on the residual (x + bias) added in the epilogue.
      const out = this.to_out[0];
      const residual = add(x.reshape([B, C, L]), out.bias.t.reshape([1, C, 1]));
      return matmul(out.weight.t, attn, { transB: true, residual }).reshape([B, C, H, W]);
    });
  }

  /** softmax(q k^T / sqrt(C)) v for q, k, v [B, L, C]. */
  private attend(q: Tensor, k: Tensor, v: Tensor, opts: BlockOptions): Tensor {
    const [B, L, C] = q.shape;
    const scale = 1 / Math.sqrt(C);
    if (C <= FUSED_MAX_HEAD_DIM && C % 4 === 0 && !opts.unfusedAttention) {
      return attention(q, k, v, { heads: 1, scale }).out;
    }
    // A head too wide for the fused kernel (SD: 512): scores for a block of query rows at
    // a time, so that the [B, rows, L] score block stays under the binding limit.
    const limit = opts.maxBindingBytes ?? q.rt.limits.maxStorageBufferBindingSize;
    const rows = Math.min(L, Math.floor(limit / (B * L * 4)));
    if (rows < 1) throw new LimitError(`VAE attention: one row of scores over ${L} tokens for batch ${B} exceeds the binding limit ${limit}; decode fewer samples at once`);
    const block = (qb: Tensor) => matmul(softmax(matmul(qb, k, { transB: true, alpha: scale })), v);
    if (rows === L) return block(q);
    const out = Tensor.empty(q.rt, [B, L, C], q.dtype, 'vae_attention');
    for (let r0 = 0; r0 < L; r0 += rows) scope(() => copyInto(out, block(slice(q, 1, r0, Math.min(L, r0 + rows))), 1, r0));
    return out;
  }
}

/** UNetMidBlock2D (temb None, add_attention): resnet, then attention + resnet. */
export class UNetMidBlock2D extends Module {
  attentions: [Attention];
  resnets: [ResnetBlock2D, ResnetBlock2D];
  constructor(channels: number, groups: number) {
    super();
    this.attentions = [new Attention(channels, groups)];
    this.resnets = [new ResnetBlock2D(channels, channels, groups), new ResnetBlock2D(channels, channels, groups)];
  }
  forward(x: Tensor, opts: BlockOptions = {}): Tensor {
    return scope(() => {
      const h = this.resnets[0].forward(x, opts);
      return this.resnets[1].forward(this.attentions[0].forward(h, opts), opts);
    });
  }
}

/** DownEncoderBlock2D: layers resnets, then the stride-2 downsampler unless last. */
export class DownEncoderBlock2D extends Module {
  resnets: ResnetBlock2D[];
  downsamplers?: [Downsample2D];
  constructor(inC: number, outC: number, layers: number, groups: number, addDownsample: boolean) {
    super();
    this.resnets = Array.from({ length: layers }, (_, i) => new ResnetBlock2D(i === 0 ? inC : outC, outC, groups));
    if (addDownsample) this.downsamplers = [new Downsample2D(outC)];
  }
  forward(x: Tensor, opts: BlockOptions = {}): Tensor {
    return scope(() => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h, opts);
      return this.downsamplers ? this.downsamplers[0].forward(h, opts) : h;
    });
  }
}

/** UpDecoderBlock2D: layers resnets, then the nearest-x2 upsampler unless last. */
export class UpDecoderBlock2D extends Module {
  resnets: ResnetBlock2D[];
  upsamplers?: [Upsample2D];
  constructor(inC: number, outC: number, layers: number, groups: number, addUpsample: boolean) {
    super();
    this.resnets = Array.from({ length: layers }, (_, i) => new ResnetBlock2D(i === 0 ? inC : outC, outC, groups));
    if (addUpsample) this.upsamplers = [new Upsample2D(outC)];
  }
  forward(x: Tensor, opts: BlockOptions = {}): Tensor {
    return scope(() => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h, opts);
      return this.upsamplers ? this.upsamplers[0].forward(h, opts) : h;
    });
  }
}
