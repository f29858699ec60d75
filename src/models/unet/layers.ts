// The UNet's parameter holders, named like torch.nn modules so state-dict names match
// diffusers (conv1.weight, norm1.bias, to_out.0.weight ...). Each forward is one kernel
// call with its epilogue fused (bias, activation, residual, output scale).
import { conv2d, type Conv2dOptions } from '../../nn/conv2d.js';
import type { Activation } from '../../nn/elementwise.js';
import { groupNorm } from '../../nn/group_norm.js';
import { layerNorm } from '../../nn/layer_norm.js';
import { matmul } from '../../nn/matmul.js';
import { Module, Param } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';

/** nn.Conv2d: weight [out, in, k, k], bias [out]. */
export class Conv2d extends Module {
  weight: Param;
  bias?: Param;
  constructor(inChannels: number, outChannels: number, readonly kernel: number, readonly stride = 1, readonly padding = 0, bias = true) {
    super();
    this.weight = new Param([outChannels, inChannels, kernel, kernel]);
    if (bias) this.bias = new Param([outChannels]);
  }
  /** x [B, in, H, W] -> [B, out, Ho, Wo]; epilogue: activation, + residual, / outputScale. */
  forward(x: Tensor, opts: Pick<Conv2dOptions, 'activation' | 'residual' | 'outputScale'> = {}): Tensor {
    return conv2d(x, this.weight.t, this.bias?.t, { stride: this.stride, padding: this.padding, ...opts });
  }
}

/** nn.Linear: weight [out, in], bias [out] (optional). */
export class Linear extends Module {
  weight: Param;
  bias?: Param;
  constructor(inFeatures: number, outFeatures: number, bias = true) {
    super();
    this.weight = new Param([outFeatures, inFeatures]);
    if (bias) this.bias = new Param([outFeatures]);
  }
  /** x [..., in] -> act(x W^T + b) + residual, [..., out]. */
  forward(x: Tensor, opts: { activation?: Activation; residual?: Tensor } = {}): Tensor {
    return matmul(x, this.weight.t, { transB: true, bias: this.bias?.t, ...opts });
  }
}

/** nn.GroupNorm(groups, channels, eps, affine=True), optionally with SiLU fused. */
export class GroupNorm extends Module {
  weight: Param;
  bias: Param;
  constructor(readonly groups: number, channels: number, readonly eps: number) {
    super();
    this.weight = new Param([channels]);
    this.bias = new Param([channels]);
  }
  forward(x: Tensor, activation: 'none' | 'silu' = 'none'): Tensor {
    return groupNorm(x, this.groups, this.weight.t, this.bias.t, this.eps, activation);
  }
}

/** nn.LayerNorm over the last axis (inference: the statistics are dropped). */
export class LayerNorm extends Module {
  weight: Param;
  bias: Param;
  constructor(dim: number, readonly eps = 1e-5) {
    super();
    this.weight = new Param([dim]);
    this.bias = new Param([dim]);
  }
  forward(x: Tensor): Tensor {
    const { y, mean, rstd } = layerNorm(x, this.weight.t, this.bias.t, this.eps);
    mean.dispose();
    rstd.dispose();
    return y;
  }
}
