// The mask branch's layers (torchvision models/detection/mask_rcnn.py, v0.14):
// MaskRCNNHeads (four 3x3 Conv2dNormActivation + ReLU: `i.0` conv with bias in v1; `i.0`
// conv without bias and `i.1` BatchNorm2d in v2) and MaskRCNNPredictor (conv5_mask =
// ConvTranspose2d(256, 256, 2, stride 2), ReLU, mask_fcn_logits = 1x1 conv to the classes).
//
// ConvTranspose2d with kernel == stride and no padding: every input pixel writes its own
// k x k output patch, y[n, o, k*i + a, k*j + b] = bias[o] + sum_c x[n, c, i, j] W[c, o, a, b].
// That is one matmul, x as rows [N*H*W, Cin] times W as [Cin, Cout*k*k], followed by a
// pixel shuffle (a permute) and the bias + ReLU.
import { ShapeError, WeightError } from '../../gpu/errors.js';
import { add, type Activation } from '../../nn/elementwise.js';
import { permute } from '../../nn/layout.js';
import { matmul } from '../../nn/matmul.js';
import { Module, Param } from '../../nn/module.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Conv2d } from '../layers/conv.js';
import { convAsMatmul } from './conv_rows.js';
import { convNorm, foldBlock, type ConvNorm } from './fpn.js';
import type { FoldedConv } from './norm.js';

/** nn.ConvTranspose2d(in, out, kernel, stride=kernel): weight [in, out, k, k], bias [out]. */
export class ConvTranspose2d extends Module {
  weight: Param;
  bias: Param;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernel: number) {
    super();
    this.weight = new Param([inChannels, outChannels, kernel, kernel]);
    this.bias = new Param([outChannels]);
  }

  /** x [N, in, H, W] -> act(convT(x) + bias) [N, out, k*H, k*W]. */
  forward(x: Tensor, activation: Activation = 'none'): Tensor {
    const k = this.kernel;
    const [N, C, H, W] = x.shape;
    if (x.shape.length !== 4 || C !== this.inChannels) throw new ShapeError(`ConvTranspose2d: x [${x.shape}] must be [N, ${this.inChannels}, H, W]`);
    const O = this.outChannels;
    return scope(() => {
      const rows = permute(x, [0, 2, 3, 1]).reshape([N * H * W, C]);
      const patches = matmul(rows, this.weight.t.reshape([C, O * k * k]));
      const y = permute(patches.reshape([N, H, W, O, k, k]), [0, 3, 1, 4, 2, 5]).reshape([N, O, H * k, W * k]);
      return add(y, this.bias.t.reshape([1, O, 1, 1]), activation);
    });
  }
}

export class MaskRCNNPredictor extends Module {
  conv5_mask: ConvTranspose2d;
  mask_fcn_logits: Conv2d;
  constructor(inChannels: number, dimReduced: number, numClasses: number) {
    super();
    this.conv5_mask = new ConvTranspose2d(inChannels, dimReduced, 2);
    this.mask_fcn_logits = new Conv2d(dimReduced, numClasses, 1);
  }

  /** [R, 256, 14, 14] -> mask logits [R, K, 28, 28]. */
  forward(x: Tensor): Tensor {
    return scope(() => convAsMatmul(this.conv5_mask.forward(x, 'relu'), this.mask_fcn_logits.weight.t, this.mask_fcn_logits.bias?.t));
  }
}

/** MaskRCNNHeads: `layers` 3x3 convs (+ norm) with ReLU, as the state dict's `mask_head.i`. */
export function maskRCNNHeads(channels: number, layers: number, norm: { eps: number } | null): ConvNorm[] {
  const out: ConvNorm[] = [];
  for (let i = 0; i < layers; i++) out.push(convNorm(channels, channels, 3, norm));
  return out;
}

/** Runs folded mask-head blocks: [R, 256, 14, 14] -> [R, 256, 14, 14]. */
export function runMaskHead(convs: readonly FoldedConv[] | null, x: Tensor): Tensor {
  if (!convs) throw new WeightError('mask head used before its weights were loaded and folded');
  return scope(() => {
    let h = x;
    for (const c of convs) h = c.forward(h, { activation: 'relu' });
    return h;
  });
}

export async function foldMaskHead(blocks: readonly ConvNorm[], where: string): Promise<FoldedConv[]> {
  const out: FoldedConv[] = [];
  for (const [i, b] of blocks.entries()) out.push(await foldBlock(b, `${where}.${i}`));
  return out;
}
