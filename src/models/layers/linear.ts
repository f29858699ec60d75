// nn.Linear, the one every model builds from (CLIP, the UNet, the VAE attention, the
// grounding module). Fields are the state-dict names: weight [out, in], bias [out].
import type { Activation } from '../../nn/elementwise.js';
import { matmul } from '../../nn/matmul.js';
import { Module, Param } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';
import { moduleScope } from './module_scope.js';

export interface LinearOptions {
  /** torch's bias=True default; the UNet's to_q/to_k/to_v and the official Segmodule's
   *  to_q, to_k and attention out_proj have none. */
  bias?: boolean;
}

export class Linear extends Module {
  weight: Param;
  bias?: Param;
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    this.weight = new Param([outFeatures, inFeatures]);
    if (opts.bias ?? true) this.bias = new Param([outFeatures]);
  }

  /** x [..., in] -> act(x W^T + b) + residual, [..., out]; one matmul with the bias,
   *  activation and residual in its epilogue. */
  forward(x: Tensor, opts: { activation?: Activation; residual?: Tensor } = {}): Tensor {
    return moduleScope(this, x.rt, () => matmul(x, this.weight.t, { transB: true, bias: this.bias?.t, ...opts }));
  }
}
