// torchvision's ResNet-50 body (models/resnet.py, v0.14) as the detection backbone uses
// it: conv1 7x7/2 -> bn1 -> ReLU -> maxpool 3x3/2 -> layer1..layer4, returning every
// layer's output ('0'..'3'); no avgpool / fc. Bottleneck puts the stride on the 3x3 conv
// ("ResNet v1.5"). Every norm is folded into its conv by fold() after loading; forward
// runs the folded convolutions with ReLU (and, in conv1/conv2, nothing else) fused.
import { WeightError } from '../../gpu/errors.js';
import { withScope } from '../../gpu/profiler.js';
import { add } from '../../nn/elementwise.js';
import { maxPool2d } from '../../nn/max_pool.js';
import { Module } from '../../nn/module.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Conv2d } from '../layers/conv.js';
import { FoldedConv, FrozenBatchNorm2d, foldConvNorm } from './norm.js';

const EXPANSION = 4;

/** Bottleneck(inplanes, planes, stride): conv1 1x1, conv2 3x3 (stride), conv3 1x1
 *  (planes * 4), each followed by a norm; downsample = [1x1 conv (stride), norm] when the
 *  shape changes; out = ReLU(bn3(conv3(...)) + identity). */
export class Bottleneck extends Module {
  conv1: Conv2d;
  bn1: FrozenBatchNorm2d;
  conv2: Conv2d;
  bn2: FrozenBatchNorm2d;
  conv3: Conv2d;
  bn3: FrozenBatchNorm2d;
  downsample?: [Conv2d, FrozenBatchNorm2d];
  private folded: { c1: FoldedConv; c2: FoldedConv; c3: FoldedConv; down?: FoldedConv } | null = null;

  constructor(inplanes: number, planes: number, stride: number, eps: number) {
    super();
    const out = planes * EXPANSION;
    this.conv1 = new Conv2d(inplanes, planes, 1, { bias: false });
    this.bn1 = new FrozenBatchNorm2d(planes, eps);
    this.conv2 = new Conv2d(planes, planes, 3, { stride, padding: 1, bias: false });
    this.bn2 = new FrozenBatchNorm2d(planes, eps);
    this.conv3 = new Conv2d(planes, out, 1, { bias: false });
    this.bn3 = new FrozenBatchNorm2d(out, eps);
    if (stride !== 1 || inplanes !== out) {
      this.downsample = [new Conv2d(inplanes, out, 1, { stride, bias: false }), new FrozenBatchNorm2d(out, eps)];
    }
  }

  async fold(where: string): Promise<void> {
    this.folded = {
      c1: await foldConvNorm(this.conv1, this.bn1, `${where}.conv1`),
      c2: await foldConvNorm(this.conv2, this.bn2, `${where}.conv2`),
      c3: await foldConvNorm(this.conv3, this.bn3, `${where}.conv3`),
      down: this.downsample ? await foldConvNorm(this.downsample[0], this.downsample[1], `${where}.downsample`) : undefined,
    };
  }

  forward(x: Tensor): Tensor {
    const f = this.folded;
    if (!f) throw new WeightError('Bottleneck used before its weights were loaded and folded');
    return scope(() => {
      const h = f.c2.forward(f.c1.forward(x, { activation: 'relu' }), { activation: 'relu' });
      const identity = f.down ? f.down.forward(x) : x;
      return add(f.c3.forward(h), identity, 'relu');
    });
  }

  dispose(): void {
    if (!this.folded) return;
    for (const c of Object.values(this.folded)) c?.dispose();
    this.folded = null;
  }
}

/** Blocks per layer of ResNet-50. */
export const RESNET50_LAYERS = [3, 4, 6, 3] as const;

/** The ResNet-50 body: conv1, bn1, layer1..layer4. `eps` is the norms' epsilon (0 for
 *  v1's FrozenBatchNorm2d, 1e-5 for v2's BatchNorm2d). */
export class ResNetBody extends Module {
  conv1: Conv2d;
  bn1: FrozenBatchNorm2d;
  layer1: Bottleneck[];
  layer2: Bottleneck[];
  layer3: Bottleneck[];
  layer4: Bottleneck[];
  private stem: FoldedConv | null = null;

  constructor(eps: number) {
    super();
    this.conv1 = new Conv2d(3, 64, 7, { stride: 2, padding: 3, bias: false });
    this.bn1 = new FrozenBatchNorm2d(64, eps);
    let inplanes = 64;
    const layer = (planes: number, blocks: number, stride: number) => {
      const out: Bottleneck[] = [];
      for (let i = 0; i < blocks; i++) {
        out.push(new Bottleneck(inplanes, planes, i === 0 ? stride : 1, eps));
        inplanes = planes * EXPANSION;
      }
      return out;
    };
    this.layer1 = layer(64, RESNET50_LAYERS[0], 1);
    this.layer2 = layer(128, RESNET50_LAYERS[1], 2);
    this.layer3 = layer(256, RESNET50_LAYERS[2], 2);
    this.layer4 = layer(512, RESNET50_LAYERS[3], 2);
  }

  get layers(): Bottleneck[][] {
    return [this.layer1, this.layer2, this.layer3, this.layer4];
  }

  async fold(where: string): Promise<void> {
    this.stem = await foldConvNorm(this.conv1, this.bn1, `${where}.conv1`);
    for (const [l, blocks] of this.layers.entries()) {
      for (const [i, b] of blocks.entries()) await b.fold(`${where}.layer${l + 1}.${i}`);
    }
  }

  /** x [N, 3, H, W] (H, W multiples of 32) -> [C2, C3, C4, C5]: [N, 256, H/4, W/4],
   *  [N, 512, H/8, W/8], [N, 1024, H/16, W/16], [N, 2048, H/32, W/32]. */
  forward(x: Tensor): Tensor[] {
    const stem = this.stem;
    if (!stem) throw new WeightError('ResNet body used before its weights were loaded and folded');
    return scope(() => {
      let h = withScope(x.rt, 'conv1', () => scope(() => maxPool2d(stem.forward(x, { activation: 'relu' }), { kernelSize: 3, stride: 2, padding: 1 })));
      const outs: Tensor[] = [];
      for (const [l, blocks] of this.layers.entries()) {
        for (const [i, b] of blocks.entries()) {
          const next = withScope(x.rt, `layer${l + 1}.${i}`, () => b.forward(h));
          if (!outs.includes(h)) h.dispose();
          h = next;
        }
        outs.push(h);
      }
      return outs;
    });
  }

  dispose(): void {
    this.stem?.dispose();
    this.stem = null;
    for (const blocks of this.layers) for (const b of blocks) b.dispose();
  }
}
