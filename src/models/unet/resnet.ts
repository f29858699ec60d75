// ResnetBlock2D (diffusers resnet.py, time_embedding_norm 'default', pre-norm, SiLU):
//   h = conv1(silu(norm1(x))) + time_emb_proj(silu(temb))[:, :, None, None]
//   out = (conv2(silu(norm2(h))) + shortcut(x)) / output_scale_factor
// shortcut is conv_shortcut (1x1, with bias) when in != out channels, else x. SiLU is
// fused into the group norms, the residual and the output scale into conv2's epilogue.
import { add } from '../../nn/elementwise.js';
import { Module } from '../../nn/module.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { ForwardContext } from './context.js';
import { Conv2d, GroupNorm, Linear } from './layers.js';

export class ResnetBlock2D extends Module {
  norm1: GroupNorm;
  conv1: Conv2d;
  time_emb_proj: Linear;
  norm2: GroupNorm;
  conv2: Conv2d;
  conv_shortcut?: Conv2d;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    tembChannels: number,
    groups: number,
    eps: number,
    readonly outputScaleFactor = 1,
  ) {
    super();
    this.norm1 = new GroupNorm(groups, inChannels, eps);
    this.conv1 = new Conv2d(inChannels, outChannels, 3, 1, 1);
    this.time_emb_proj = new Linear(tembChannels, outChannels);
    this.norm2 = new GroupNorm(groups, outChannels, eps);
    this.conv2 = new Conv2d(outChannels, outChannels, 3, 1, 1);
    if (inChannels !== outChannels) this.conv_shortcut = new Conv2d(inChannels, outChannels, 1, 1, 0);
  }

  /** x [B, in, H, W] -> [B, out, H, W]. */
  forward(ctx: ForwardContext, x: Tensor): Tensor {
    return scope(() => {
      const [B] = x.shape;
      const t = this.time_emb_proj.forward(ctx.tembAct).reshape([B, this.outChannels, 1, 1]);
      const h = add(this.conv1.forward(this.norm1.forward(x, 'silu')), t);
      const shortcut = this.conv_shortcut ? this.conv_shortcut.forward(x) : x;
      return this.conv2.forward(this.norm2.forward(h, 'silu'), { residual: shortcut, outputScale: this.outputScaleFactor });
    });
  }
}
