// The SD 1.x VAE's blocks, mirroring diffusers v0.25.1 unet_2d_blocks.py
// DownEncoderBlock2D, UpDecoderBlock2D and UNetMidBlock2D, built from the shared
// ResnetBlock2D (temb_channels=None), Downsample2D/Upsample2D and Attention (layers/).
// Field names are the weight names. Every block takes x [B, C, H, W] and returns NCHW.
import { Module } from '../../nn/module.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Attention } from '../layers/attention.js';
import { moduleScope } from '../layers/module_scope.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from '../layers/resnet.js';

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

const resnet = (inC: number, outC: number, groups: number) => new ResnetBlock2D(inC, outC, { tembChannels: null, groups, eps: VAE_EPS });

/** x through the resnets in turn, each output freed once the next resnet has read it (the
 *  decoder's last blocks hold 128-256 MiB maps at 512x512), never x itself. */
function chain(x: Tensor, resnets: ResnetBlock2D[], opts: BlockOptions): Tensor {
  let h = x;
  for (const r of resnets) {
    const next = r.forward(h, undefined, opts);
    if (h !== x) h.dispose();
    h = next;
  }
  return h;
}

/** resample(h), freeing h (unless it is the block input x), or h without a resampler. */
function resampled(h: Tensor, resample: ((h: Tensor) => Tensor) | undefined, x: Tensor): Tensor {
  if (!resample) return h;
  const y = resample(h);
  if (h !== x) h.dispose();
  return y;
}

/** UNetMidBlock2D (temb None, add_attention): resnet, then attention + resnet. The
 *  attention is diffusers' Attention(query_dim=C, heads=1, dim_head=C, bias=True,
 *  norm_num_groups, eps=resnet_eps, residual_connection=True, rescale_output_factor=1). */
export class UNetMidBlock2D extends Module {
  attentions: [Attention];
  resnets: [ResnetBlock2D, ResnetBlock2D];
  constructor(channels: number, groups: number) {
    super();
    this.attentions = [
      new Attention({ queryDim: channels, heads: 1, dimHead: channels, bias: true, normNumGroups: groups, eps: VAE_EPS, residualConnection: true }),
    ];
    this.resnets = [resnet(channels, channels, groups), resnet(channels, channels, groups)];
  }
  forward(x: Tensor, opts: BlockOptions = {}): Tensor {
    return moduleScope(this, x.rt, () => scope(() => {
      const h = this.resnets[0].forward(x, undefined, opts);
      return this.resnets[1].forward(this.attentions[0].forward(h, opts), undefined, opts);
    }));
  }
}

/** DownEncoderBlock2D: layers resnets, then the stride-2 downsampler (padding 0) unless last. */
export class DownEncoderBlock2D extends Module {
  resnets: ResnetBlock2D[];
  downsamplers?: [Downsample2D];
  constructor(inC: number, outC: number, layers: number, groups: number, addDownsample: boolean) {
    super();
    this.resnets = Array.from({ length: layers }, (_, i) => resnet(i === 0 ? inC : outC, outC, groups));
    if (addDownsample) this.downsamplers = [new Downsample2D(outC, 0)];
  }
  forward(x: Tensor, opts: BlockOptions = {}): Tensor {
    return moduleScope(this, x.rt, () => scope(() => {
      const down = this.downsamplers?.[0];
      return resampled(chain(x, this.resnets, opts), down && ((h) => down.forward(h, opts)), x);
    }));
  }
}

/** UpDecoderBlock2D: layers resnets, then the nearest-x2 upsampler unless last. */
export class UpDecoderBlock2D extends Module {
  resnets: ResnetBlock2D[];
  upsamplers?: [Upsample2D];
  constructor(inC: number, outC: number, layers: number, groups: number, addUpsample: boolean) {
    super();
    this.resnets = Array.from({ length: layers }, (_, i) => resnet(i === 0 ? inC : outC, outC, groups));
    if (addUpsample) this.upsamplers = [new Upsample2D(outC)];
  }
  forward(x: Tensor, opts: BlockOptions = {}): Tensor {
    return moduleScope(this, x.rt, () => scope(() => {
      const up = this.upsamplers?.[0];
      return resampled(chain(x, this.resnets, opts), up && ((h) => up.forward(h, undefined, opts)), x);
    }));
  }
}
