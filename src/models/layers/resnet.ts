// diffusers resnet.py ResnetBlock2D, downsampling.py Downsample2D and upsampling.py
// Upsample2D (v0.25.1): one each, built by the UNet (with a time embedding) and the VAE
// (temb_channels=None). Field names are the weight names.
import { InputError } from '../../gpu/errors.js';
import { add } from '../../nn/elementwise.js';
import { Module } from '../../nn/module.js';
import { window2d } from '../../nn/pad.js';
import { upsampleNearest2x } from '../../nn/resize.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Conv2d } from './conv.js';
import { Linear } from './linear.js';
import { moduleScope } from './module_scope.js';
import { GroupNorm } from './norms.js';

/** Test hook every convolution of a block passes down. */
export interface ConvLimits {
  /** @internal Tests: a binding limit below the adapter's, forcing row-banded convolutions. */
  maxBindingBytes?: number;
}

export interface ResnetBlock2DConfig {
  /** temb_channels: the UNet's time embedding width; null for the VAE (no time_emb_proj). */
  tembChannels: number | null;
  groups: number;
  eps: number;
  /** output_scale_factor (UNetMidBlock2DCrossAttn: mid_block_scale_factor), default 1. */
  outputScaleFactor?: number;
}

/** time_embedding_norm 'default', pre-norm, SiLU, eval (dropout inactive):
 *    h = conv1(silu(norm1(x))) [+ time_emb_proj(silu(temb))[:, :, None, None]]
 *    out = (conv2(silu(norm2(h))) + shortcut(x)) / output_scale_factor
 *  shortcut is conv_shortcut (1x1, with bias) when in != out channels, else x. SiLU is
 *  fused into the group norms, the residual and the output scale into conv2's epilogue. */
export class ResnetBlock2D extends Module {
  norm1: GroupNorm;
  conv1: Conv2d;
  time_emb_proj?: Linear;
  norm2: GroupNorm;
  conv2: Conv2d;
  conv_shortcut?: Conv2d;
  readonly outputScaleFactor: number;

  constructor(readonly inChannels: number, readonly outChannels: number, cfg: ResnetBlock2DConfig) {
    super();
    this.norm1 = new GroupNorm(cfg.groups, inChannels, cfg.eps);
    this.conv1 = new Conv2d(inChannels, outChannels, 3, { padding: 1 });
    if (cfg.tembChannels !== null) this.time_emb_proj = new Linear(cfg.tembChannels, outChannels);
    this.norm2 = new GroupNorm(cfg.groups, outChannels, cfg.eps);
    this.conv2 = new Conv2d(outChannels, outChannels, 3, { padding: 1 });
    if (inChannels !== outChannels) this.conv_shortcut = new Conv2d(inChannels, outChannels, 1);
    this.outputScaleFactor = cfg.outputScaleFactor ?? 1;
  }

  /** x [B, in, H, W] -> [B, out, H, W]. `tembAct` is silu(temb) [B, temb_channels],
   *  computed once per forward by the caller (diffusers applies the SiLU in every block);
   *  it is required exactly when the block has a time_emb_proj. */
  forward(x: Tensor, tembAct?: Tensor, opts: ConvLimits = {}): Tensor {
    if (!this.time_emb_proj !== !tembAct) {
      throw new InputError(`ResnetBlock2D: ${this.time_emb_proj ? 'built with temb_channels, so it needs a time embedding' : 'built with temb_channels=None, so it takes no time embedding'}`);
    }
    return moduleScope(this, x.rt, () => scope(() => {
      const [B] = x.shape;
      // Each intermediate is freed once the next op has consumed it (queue order makes that
      // safe): at the SD VAE's 512x512 level they are 128-256 MiB each in f32, and holding
      // them to the end of the block would add four of them to the peak.
      const n1 = this.norm1.forward(x, 'silu');
      let h = this.conv1.forward(n1, opts);
      n1.dispose();
      if (this.time_emb_proj && tembAct) {
        const conditioned = add(h, this.time_emb_proj.forward(tembAct).reshape([B, this.outChannels, 1, 1]));
        h.dispose();
        h = conditioned;
      }
      const n2 = this.norm2.forward(h, 'silu');
      h.dispose();
      const shortcut = this.conv_shortcut ? this.conv_shortcut.forward(x, opts) : x;
      return this.conv2.forward(n2, { ...opts, residual: shortcut, outputScale: this.outputScaleFactor });
    }));
  }
}

/** Downsample2D(use_conv=True): a 3x3 stride-2 conv. padding 1 is symmetric; padding 0
 *  (the VAE, and UNets with downsample_padding 0) pads (0, 1, 0, 1) first, as diffusers
 *  does, so the output is ceil(H/2) x ceil(W/2) either way for even sizes. */
export class Downsample2D extends Module {
  conv: Conv2d;
  constructor(channels: number, readonly padding = 1) {
    super();
    this.conv = new Conv2d(channels, channels, 3, { stride: 2, padding });
  }
  forward(x: Tensor, opts: ConvLimits = {}): Tensor {
    return moduleScope(this, x.rt, () => this.conv.forward(x, this.padding === 0 ? { ...opts, pads: [0, 1, 0, 1] } : opts));
  }
}

/** Upsample2D(use_conv=True): nearest 2x, then a 3x3 conv with padding 1. */
export class Upsample2D extends Module {
  conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = new Conv2d(channels, channels, 3, { padding: 1 });
  }
  /** x [B, C, H, W] -> [B, C, 2H, 2W], or [B, C, outputSize] when the skip it meets is
   *  odd-sized (diffusers' upsample_size). Nearest resize from H to 2H - 1 picks source
   *  row floor(i * H / (2H - 1)) = floor(i / 2), so it equals 2x upsampling cropped. */
  forward(x: Tensor, outputSize?: readonly [number, number], opts: ConvLimits = {}): Tensor {
    return moduleScope(this, x.rt, () => scope(() => {
      let up = upsampleNearest2x(x);
      const [h, w] = outputSize ?? [up.shape[2], up.shape[3]];
      if (h !== up.shape[2] || w !== up.shape[3]) {
        if (h < up.shape[2] - 1 || h > up.shape[2] || w < up.shape[3] - 1 || w > up.shape[3]) {
          throw new InputError(`Upsample2D: cannot resize ${x.shape[2]}x${x.shape[3]} to ${h}x${w} (expected 2x or 2x - 1)`);
        }
        up = window2d(up, 0, 0, h, w);
      }
      return this.conv.forward(up, opts);
    }));
  }
}
