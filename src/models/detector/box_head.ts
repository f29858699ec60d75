// The box branch's layers (torchvision models/detection/faster_rcnn.py, v0.14):
// TwoMLPHead (v1: fc6, fc7 with ReLU), FastRCNNConvFCHead (v2: four 3x3 conv + BatchNorm2d
// + ReLU blocks `0`..`3`, Flatten at index 4, Linear `5` + ReLU) and FastRCNNPredictor
// (cls_score, bbox_pred; bbox_pred's columns 4c..4c+3 are class c's deltas).
import { WeightError } from '../../gpu/errors.js';
import { Module } from '../../nn/module.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Linear } from '../layers/linear.js';
import { convNorm, foldBlock, type ConvNorm } from './fpn.js';
import type { FoldedConv } from './norm.js';

/** Rows of the RoI features [R, C, P, P] as [R, C*P*P] (torch's flatten(start_dim=1)). */
const flatten = (x: Tensor): Tensor => x.reshape([x.shape[0], x.size / Math.max(1, x.shape[0])]);

export class TwoMLPHead extends Module {
  fc6: Linear;
  fc7: Linear;
  constructor(inChannels: number, representationSize: number) {
    super();
    this.fc6 = new Linear(inChannels, representationSize);
    this.fc7 = new Linear(representationSize, representationSize);
  }

  async fold(): Promise<void> {}

  /** [R, 256, 7, 7] -> [R, 1024]. */
  forward(x: Tensor): Tensor {
    return scope(() => this.fc7.forward(this.fc6.forward(flatten(x), { activation: 'relu' }), { activation: 'relu' }));
  }

  dispose(): void {}
}

/** Sequential(4 x Conv2dNormActivation, Flatten, Linear): the field names are the
 *  Sequential's indices (4, the Flatten, has no weights). */
export class FastRCNNConvFCHead extends Module {
  0: ConvNorm;
  1: ConvNorm;
  2: ConvNorm;
  3: ConvNorm;
  5: Linear;
  private folded: FoldedConv[] | null = null;

  constructor(channels: number, pooled: number, representationSize: number, eps: number) {
    super();
    this[0] = convNorm(channels, channels, 3, { eps });
    this[1] = convNorm(channels, channels, 3, { eps });
    this[2] = convNorm(channels, channels, 3, { eps });
    this[3] = convNorm(channels, channels, 3, { eps });
    this[5] = new Linear(channels * pooled * pooled, representationSize);
  }

  async fold(where: string): Promise<void> {
    const out: FoldedConv[] = [];
    for (const i of [0, 1, 2, 3] as const) out.push(await foldBlock(this[i], `${where}.${i}`));
    this.folded = out;
  }

  /** [R, 256, 7, 7] -> [R, 1024]. */
  forward(x: Tensor): Tensor {
    const convs = this.folded;
    if (!convs) throw new WeightError('FastRCNNConvFCHead used before its weights were loaded and folded');
    return scope(() => {
      let h = x;
      for (const c of convs) h = c.forward(h, { activation: 'relu' });
      return this[5].forward(flatten(h), { activation: 'relu' });
    });
  }

  dispose(): void {
    for (const c of this.folded ?? []) c.dispose();
    this.folded = null;
  }
}

export class FastRCNNPredictor extends Module {
  cls_score: Linear;
  bbox_pred: Linear;
  constructor(inChannels: number, numClasses: number) {
    super();
    this.cls_score = new Linear(inChannels, numClasses);
    this.bbox_pred = new Linear(inChannels, numClasses * 4);
  }

  /** [R, 1024] -> class logits [R, K] and box regression [R, 4K]. */
  forward(x: Tensor): { classLogits: Tensor; boxRegression: Tensor } {
    return { classLogits: this.cls_score.forward(x), boxRegression: this.bbox_pred.forward(x) };
  }
}
