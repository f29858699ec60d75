// nn.LayerNorm and nn.GroupNorm (affine), shared by CLIP, the UNet, the VAE and the
// grounding module. Argument order and eps defaults are torch's.
import { groupNorm } from '../../nn/group_norm.js';
import { layerNorm } from '../../nn/layer_norm.js';
import { Module, Param } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';
import { moduleScope } from './module_scope.js';

/** nn.LayerNorm(dim, eps) over the last axis: weight, bias [dim]. */
export class LayerNorm extends Module {
  weight: Param;
  bias: Param;
  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.weight = new Param([dim]);
    this.bias = new Param([dim]);
  }
  /** Inference: x [..., dim] -> same shape; the saved statistics are dropped (training
   *  code calls nn/layer_norm directly to keep them for the backward). */
  forward(x: Tensor): Tensor {
    const { y, mean, rstd } = moduleScope(this, x.rt, () => layerNorm(x, this.weight.t, this.bias.t, this.eps));
    mean.dispose();
    rstd.dispose();
    return y;
  }
}

/** nn.GroupNorm(groups, channels, eps, affine=True): weight, bias [channels]. */
export class GroupNorm extends Module {
  weight: Param;
  bias: Param;
  constructor(readonly groups: number, readonly channels: number, readonly eps = 1e-5) {
    super();
    this.weight = new Param([channels]);
    this.bias = new Param([channels]);
  }
  /** x [B, C, ...] -> same shape; 'silu' fuses the SiLU that always follows the norm in
   *  ResnetBlock2D and before conv_out. */
  forward(x: Tensor, activation: 'none' | 'silu' = 'none'): Tensor {
    return moduleScope(this, x.rt, () => groupNorm(x, this.groups, this.weight.t, this.bias.t, this.eps, activation));
  }
}
