// torchvision's FeaturePyramidNetwork (ops/feature_pyramid_network.py, v0.14) with the
// LastLevelMaxPool extra block, as BackboneWithFPN builds it for ResNet-50:
//   last = inner_blocks[3](C5); P5 = layer_blocks[3](last)
//   for i = 2, 1, 0: last = inner_blocks[i](C_i) + nearest(last, size of C_i); P_i = layer_blocks[i](last)
//   'pool' = max_pool2d(P5, kernel 1, stride 2)
// inner_blocks.i / layer_blocks.i are Conv2dNormActivation without activation: a 1x1 /
// 3x3 conv with bias (v1: `.0` only), or a conv without bias and a BatchNorm2d (v2: `.0`
// and `.1`), folded at load. With a batch padded to a multiple of 32 every level is
// exactly half the one below, so the nearest upsample is a 2x repeat, and the add is
// the lateral conv's fused residual.
import { withScope } from '../../gpu/profiler.js';
import { ShapeError, WeightError } from '../../gpu/errors.js';
import { maxPool2d } from '../../nn/max_pool.js';
import { Module } from '../../nn/module.js';
import { upsampleNearest2x } from '../../nn/resize.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Conv2d } from '../layers/conv.js';
import { FoldedConv, FrozenBatchNorm2d, foldConvNorm } from './norm.js';

/** Conv2dNormActivation(activation None): [conv] (v1) or [conv, norm] (v2). */
export type ConvNorm = [Conv2d] | [Conv2d, FrozenBatchNorm2d];

export function convNorm(cin: number, cout: number, kernel: number, norm: { eps: number } | null, stride = 1): ConvNorm {
  const padding = (kernel - 1) >> 1;
  if (!norm) return [new Conv2d(cin, cout, kernel, { stride, padding })];
  return [new Conv2d(cin, cout, kernel, { stride, padding, bias: false }), new FrozenBatchNorm2d(cout, norm.eps)];
}

export const foldBlock = (b: ConvNorm, where: string): Promise<FoldedConv> => foldConvNorm(b[0], b[1] ?? null, where);

export class FeaturePyramidNetwork extends Module {
  inner_blocks: ConvNorm[];
  layer_blocks: ConvNorm[];
  private folded: { inner: FoldedConv[]; layer: FoldedConv[] } | null = null;

  /** in_channels_list [256, 512, 1024, 2048] -> out_channels 256; `norm` null (v1) or
   *  BatchNorm2d's eps (v2). */
  constructor(inChannels: readonly number[], readonly outChannels: number, norm: { eps: number } | null) {
    super();
    this.inner_blocks = inChannels.map((c) => convNorm(c, outChannels, 1, norm));
    this.layer_blocks = inChannels.map(() => convNorm(outChannels, outChannels, 3, norm));
  }

  async fold(where: string): Promise<void> {
    const inner: FoldedConv[] = [];
    const layer: FoldedConv[] = [];
    for (const [i, b] of this.inner_blocks.entries()) inner.push(await foldBlock(b, `${where}.inner_blocks.${i}`));
    for (const [i, b] of this.layer_blocks.entries()) layer.push(await foldBlock(b, `${where}.layer_blocks.${i}`));
    this.folded = { inner, layer };
  }

  /** [C2..C5] -> [P2, P3, P4, P5, pool] (outChannels each; pool is P5 subsampled by 2). */
  forward(feats: readonly Tensor[]): Tensor[] {
    const f = this.folded;
    if (!f) throw new WeightError('FeaturePyramidNetwork used before its weights were loaded and folded');
    if (feats.length !== f.inner.length) throw new ShapeError(`FeaturePyramidNetwork: ${feats.length} feature maps for ${f.inner.length} levels`);
    return scope(() => {
      const n = feats.length;
      const rt = feats[0].rt;
      let last = withScope(rt, `inner_blocks.${n - 1}`, () => f.inner[n - 1].forward(feats[n - 1]));
      const results: Tensor[] = [withScope(rt, `layer_blocks.${n - 1}`, () => f.layer[n - 1].forward(last))];
      for (let i = n - 2; i >= 0; i--) {
        const [, , h, w] = feats[i].shape;
        const [, , lh, lw] = last.shape;
        if (h !== 2 * lh || w !== 2 * lw) {
          throw new ShapeError(`FeaturePyramidNetwork: level ${i} is ${h}x${w} but level ${i + 1} is ${lh}x${lw}; pad the batch to a multiple of 32 so each level is twice the next`);
        }
        const prev = last;
        last = withScope(rt, `inner_blocks.${i}`, () => f.inner[i].forward(feats[i], { residual: upsampleNearest2x(prev) }));
        const lat = last;
        results.unshift(withScope(rt, `layer_blocks.${i}`, () => f.layer[i].forward(lat)));
      }
      results.push(withScope(rt, 'pool', () => maxPool2d(results[n - 1], { kernelSize: 1, stride: 2, padding: 0 })));
      return results;
    });
  }

  dispose(): void {
    if (!this.folded) return;
    for (const c of [...this.folded.inner, ...this.folded.layer]) c.dispose();
    this.folded = null;
  }
}
