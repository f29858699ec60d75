// torchvision's MaskRCNN (maskrcnn_resnet50_fpn v1 / maskrcnn_resnet50_fpn_v2, v0.14) in
// inference: the module tree carries the state-dict names (backbone.body.*,
// backbone.fpn.*, rpn.head.*, roi_heads.*), so checkpoints load by name; after loading,
// every norm is folded into its convolution. The stages are public so that parity runs
// each from stored inputs; detect() chains them:
//   transform -> backbone (ResNet-50 + FPN) -> RPN head -> anchors -> proposals (host)
//   -> box branch -> detections (host) -> mask branch -> masks pasted into the image.
import { InputError, ShapeError, WeightError } from '../../gpu/errors.js';
import { withScope } from '../../gpu/profiler.js';
import type { Runtime } from '../../gpu/runtime.js';
import { Module, disposeParams, loadWeights, type WeightSource } from '../../nn/module.js';
import { gridAnchors } from '../../nn/anchors.js';
import { resizeBoxes } from '../../nn/boxes.js';
import { rcnnTransform } from '../../nn/rcnn_transform.js';
import { scope, scopeAsync } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';
import { FPN_CHANNELS, detectorConfig, type DetectorArch, type DetectorConfig } from './config.js';
import { FeaturePyramidNetwork } from './fpn.js';
import { isNormCounter } from './norm.js';
import { ResNetBody } from './resnet.js';
import { pasteMaskCrops, type PastedMask } from './paste.js';
import { RoIHeads, postprocessDetections, selectMaskProbs, type Detections } from './roi_heads.js';
import { RPNHead, filterProposals, flattenRpnOutputs, type Proposals } from './rpn.js';

export type { PastedMask } from './paste.js';

/** An RGB image in [0, 1], channel-major [3, height, width]. */
export interface DetectorImage {
  width: number;
  height: number;
  rgb: Float32Array;
}

export class BackboneWithFPN extends Module {
  body: ResNetBody;
  fpn: FeaturePyramidNetwork;
  constructor(arch: DetectorArch) {
    super();
    this.body = new ResNetBody(arch === 'v1' ? 0 : 1e-5);
    this.fpn = new FeaturePyramidNetwork([256, 512, 1024, 2048], FPN_CHANNELS, arch === 'v1' ? null : { eps: 1e-5 });
  }

  /** batch [N, 3, H, W] -> body outputs '0'..'3' and FPN outputs '0'..'3', 'pool'. */
  forward(x: Tensor): { body: Tensor[]; fpn: Tensor[] } {
    const body = withScope(x.rt, 'det_backbone', () => this.body.forward(x));
    return { body, fpn: withScope(x.rt, 'det_fpn', () => this.fpn.forward(body)) };
  }
}

export class RegionProposalNetwork extends Module {
  head: RPNHead;
  constructor(arch: DetectorArch, anchorsPerLocation: number) {
    super();
    this.head = new RPNHead(FPN_CHANNELS, anchorsPerLocation, arch === 'v1' ? 1 : 2);
  }
}

/** One image's final detections, in original-image coordinates. */
export interface DetectionResult {
  width: number;
  height: number;
  /** [D, 4] x1, y1, x2, y2, decreasing score. */
  boxes: Float32Array;
  scores: Float32Array;
  labels: Int32Array;
  /** Per detection, its mask probabilities pasted into the image (the region outside is 0). */
  masks: PastedMask[];
}

export class MaskRCNN extends Module {
  backbone: BackboneWithFPN;
  rpn: RegionProposalNetwork;
  roi_heads: RoIHeads;
  readonly cfg: DetectorConfig;
  private ready = false;

  constructor(raw: Partial<DetectorConfig> & { arch: DetectorArch }) {
    super();
    this.cfg = detectorConfig(raw);
    this.backbone = new BackboneWithFPN(this.cfg.arch);
    this.rpn = new RegionProposalNetwork(this.cfg.arch, this.cfg.anchor_aspect_ratios[0].length);
    this.roi_heads = new RoIHeads(this.cfg);
  }

  /** Loads every parameter from `source` by its state-dict name (all missing, unexpected
   *  and mis-shaped names reported together), then folds the norms. */
  async load(rt: Runtime, source: WeightSource): Promise<void> {
    if (this.ready) throw new WeightError('MaskRCNN.load: the weights are already loaded and folded');
    await loadWeights(rt, this, source, { ignore: isNormCounter });
    await this.backbone.body.fold('backbone.body');
    await this.backbone.fpn.fold('backbone.fpn');
    await this.roi_heads.fold('roi_heads');
    this.ready = true;
  }

  dispose(): void {
    this.backbone.body.dispose();
    this.backbone.fpn.dispose();
    this.roi_heads.dispose();
    disposeParams(this);
    this.ready = false;
  }

  private check(): void {
    if (!this.ready) throw new WeightError('MaskRCNN used before load()');
  }

  /** GeneralizedRCNNTransform: normalise, resize by min/max size, pad into one batch. */
  transform(rt: Runtime, images: readonly DetectorImage[]): { batch: Tensor; imageSizes: [number, number][] } {
    const c = this.cfg;
    return withScope(rt, 'det_transform', () => scope(() => {
      const tensors = images.map((im, i) => Tensor.from(rt, im.rgb, [3, im.height, im.width], 'f32', `image ${i}`));
      return rcnnTransform(tensors, { minSize: c.min_size, maxSize: c.max_size, imageMean: c.image_mean, imageStd: c.image_std, sizeDivisible: c.size_divisible });
    }));
  }

  /** RPN head on each FPN level. */
  rpnHead(fpn: readonly Tensor[]): { objectness: Tensor; deltas: Tensor }[] {
    this.check();
    const names = ['0', '1', '2', '3', 'pool'];
    return withScope(fpn[0].rt, 'det_rpn', () => fpn.map((f, i) => withScope(f.rt, `head.level_${names[i] ?? i}`, () => this.rpn.head.forward(f))));
  }

  /** Anchors of every level for a batch of `batchHW` with FPN levels `levelHW`. */
  anchors(batchHW: readonly [number, number], levelHW: readonly (readonly [number, number])[]): { anchors: Float32Array; numAnchorsPerLevel: number[] } {
    const g = gridAnchors(batchHW, levelHW, this.cfg.anchor_sizes, this.cfg.anchor_aspect_ratios);
    return { anchors: g.anchors, numAnchorsPerLevel: g.numPerLevel };
  }

  /** Proposals of every image from the RPN head's outputs (host copies). */
  proposals(
    head: { objectness: Float32Array; deltas: Float32Array; shape: readonly number[] }[], anchors: Float32Array, numAnchorsPerLevel: readonly number[],
    imageSizes: readonly (readonly [number, number])[],
  ): Proposals[] {
    return imageSizes.map((size, n) => filterProposals(flattenRpnOutputs(head, n), anchors, numAnchorsPerLevel, size, this.cfg));
  }

  /** Detections of every image from the box branch on `proposals`. */
  async detections(fpn: readonly Tensor[], proposals: readonly Float32Array[], imageSizes: readonly (readonly [number, number])[]): Promise<Detections[]> {
    this.check();
    return scopeAsync(async () => {
      const rt = fpn[0].rt;
      const { classLogits, boxRegression } = withScope(rt, 'det_box_head', () => {
        const { pooled } = withScope(rt, 'box_roi_pool', () => this.roi_heads.pool(fpn, proposals, imageSizes, this.cfg.roi_align.box_output_size));
        return this.roi_heads.boxBranch(pooled);
      });
      const [logits, regression] = await Promise.all([classLogits.toArray(), boxRegression.toArray()]);
      const K = this.cfg.num_classes;
      const out: Detections[] = [];
      let row = 0;
      for (const [i, p] of proposals.entries()) {
        const P = p.length / 4;
        out.push(postprocessDetections(logits.subarray(row * K, (row + P) * K), regression.subarray(row * 4 * K, (row + P) * 4 * K), p, imageSizes[i], this.cfg));
        row += P;
      }
      return out;
    });
  }

  /** Mask probabilities [D_i, M, M] of every image's detections. */
  async maskProbs(fpn: readonly Tensor[], dets: readonly Detections[], imageSizes: readonly (readonly [number, number])[]): Promise<Float32Array[]> {
    this.check();
    const total = dets.reduce((s, d) => s + d.labels.length, 0);
    const M = 2 * this.cfg.roi_align.mask_output_size;
    if (total === 0) return dets.map(() => new Float32Array(0));
    return scopeAsync(async () => {
      const rt = fpn[0].rt;
      const branch = withScope(rt, 'det_mask_head', () => {
        const { pooled } = withScope(rt, 'mask_roi_pool', () => this.roi_heads.pool(fpn, dets.map((d) => d.boxes), imageSizes, this.cfg.roi_align.mask_output_size));
        return this.roi_heads.maskBranch(pooled);
      });
      const logits = await branch.logits.toArray();
      const out: Float32Array[] = [];
      let row = 0;
      for (const d of dets) {
        const R = d.labels.length;
        const K = this.cfg.num_classes;
        out.push(selectMaskProbs(logits.subarray(row * K * M * M, (row + R) * K * M * M), d.labels, K, M).probs);
        row += R;
      }
      return out;
    });
  }

  /** Detects objects in a batch of images (RGB in [0, 1], [3, H, W]). */
  async detect(rt: Runtime, images: readonly DetectorImage[]): Promise<DetectionResult[]> {
    this.check();
    if (images.length === 0) return [];
    for (const [i, im] of images.entries()) {
      if (!(im.height > 0 && im.width > 0)) throw new InputError(`image ${i} is ${im.height}x${im.width}; the detector needs a non-empty image`);
      if (im.rgb.length !== 3 * im.height * im.width) throw new ShapeError(`image ${i}: ${im.rgb.length} values for [3, ${im.height}, ${im.width}]`);
    }
    return scopeAsync(async () => {
      const { batch, imageSizes } = this.transform(rt, images);
      const { body, fpn } = this.backbone.forward(batch);
      for (const t of body) t.dispose();
      const head = this.rpnHead(fpn);
      const host = await Promise.all(head.map(async (h) => ({ objectness: await h.objectness.toArray(), deltas: await h.deltas.toArray(), shape: h.objectness.shape })));
      for (const h of head) {
        h.objectness.dispose();
        h.deltas.dispose();
      }
      const { anchors, numAnchorsPerLevel } = this.anchors([batch.shape[2], batch.shape[3]], fpn.map((f) => [f.shape[2], f.shape[3]] as [number, number]));
      const proposals = this.proposals(host, anchors, numAnchorsPerLevel, imageSizes);
      const dets = await this.detections(fpn, proposals.map((p) => p.boxes), imageSizes);
      const probs = await this.maskProbs(fpn, dets, imageSizes);
      const M = 2 * this.cfg.roi_align.mask_output_size;
      const out: DetectionResult[] = [];
      for (const [i, d] of dets.entries()) {
        const { height, width } = images[i];
        const boxes = resizeBoxes(d.boxes, imageSizes[i], [height, width]);
        const { masks } = await pasteMaskCrops(rt, probs[i], M, boxes, [height, width], this.cfg.mask_paste_padding);
        out.push({ width, height, boxes, scores: d.scores, labels: d.labels, masks });
      }
      return out;
    });
  }
}
