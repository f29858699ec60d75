// torchvision's RoIHeads in eval (models/detection/roi_heads.py, v0.14): the box branch
// (MultiScaleRoIAlign 7x7 -> box head -> predictor) and postprocess_detections on the
// host, then the mask branch on the detections (MultiScaleRoIAlign 14x14 -> mask head ->
// predictor) and maskrcnn_inference (sigmoid of the label's channel).
import { ShapeError, WeightError } from '../../gpu/errors.js';
import { withScope } from '../../gpu/profiler.js';
import { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';
import { FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead } from './box_head.js';
import { FPN_CHANNELS, type DetectorConfig } from './config.js';
import type { ConvNorm } from './fpn.js';
import { MaskRCNNPredictor, foldMaskHead, maskRCNNHeads, runMaskHead } from './mask_head.js';
import type { FoldedConv } from './norm.js';
import { clipBoxesToImage, decodeBoxes, removeSmallBoxes } from '../../nn/boxes.js';
import { batchedNms } from '../../nn/nms.js';
import { multiScaleRoiAlign } from '../../nn/roi_align.js';

const REPRESENTATION = 1024;
const MASK_LAYERS = 4;
/** MultiScaleRoIAlign's featmap_names: '0'..'3'. */
const ROI_LEVELS = 4;

export class RoIHeads extends Module {
  box_head: TwoMLPHead | FastRCNNConvFCHead;
  box_predictor: FastRCNNPredictor;
  mask_head: ConvNorm[];
  mask_predictor: MaskRCNNPredictor;
  private maskConvs: FoldedConv[] | null = null;

  constructor(readonly cfg: DetectorConfig) {
    super();
    const p = cfg.roi_align.box_output_size;
    const norm = cfg.arch === 'v2' ? { eps: 1e-5 } : null;
    this.box_head = cfg.arch === 'v1'
      ? new TwoMLPHead(FPN_CHANNELS * p * p, REPRESENTATION)
      : new FastRCNNConvFCHead(FPN_CHANNELS, p, REPRESENTATION, 1e-5);
    this.box_predictor = new FastRCNNPredictor(REPRESENTATION, cfg.num_classes);
    this.mask_head = maskRCNNHeads(FPN_CHANNELS, MASK_LAYERS, norm);
    this.mask_predictor = new MaskRCNNPredictor(FPN_CHANNELS, FPN_CHANNELS, cfg.num_classes);
  }

  async fold(where: string): Promise<void> {
    if (this.box_head instanceof FastRCNNConvFCHead) await this.box_head.fold(`${where}.box_head`);
    this.maskConvs = await foldMaskHead(this.mask_head, `${where}.mask_head`);
  }

  /** MultiScaleRoIAlign of per-image boxes [K_i * 4] over FPN '0'..'3' (not 'pool'). */
  pool(features: readonly Tensor[], boxes: readonly Float32Array[], imageSizes: readonly (readonly [number, number])[], outputSize: number): { pooled: Tensor; levels: Int32Array } {
    const lm = this.cfg.level_mapper;
    const { output, levels } = multiScaleRoiAlign(features.slice(0, ROI_LEVELS), boxes, imageSizes, {
      outputSize, samplingRatio: this.cfg.roi_align.sampling_ratio, canonicalScale: lm.canonical_scale, canonicalLevel: lm.canonical_level, eps: lm.eps,
    });
    return { pooled: output, levels };
  }

  /** Box head and predictor on pooled features [R, 256, 7, 7]. */
  boxBranch(pooled: Tensor): { features: Tensor; classLogits: Tensor; boxRegression: Tensor } {
    const features = withScope(pooled.rt, 'box_head', () => this.box_head.forward(pooled));
    return { features, ...withScope(pooled.rt, 'box_predictor', () => this.box_predictor.forward(features)) };
  }

  /** Mask head and predictor on pooled features [R, 256, 14, 14] -> head output and
   *  logits [R, K, 28, 28]. */
  maskBranch(pooled: Tensor): { features: Tensor; logits: Tensor } {
    const features = withScope(pooled.rt, 'mask_head', () => runMaskHead(this.maskConvs, pooled));
    return { features, logits: withScope(pooled.rt, 'mask_predictor', () => this.mask_predictor.forward(features)) };
  }

  dispose(): void {
    if (this.box_head instanceof FastRCNNConvFCHead) this.box_head.dispose();
    for (const c of this.maskConvs ?? []) c.dispose();
    this.maskConvs = null;
  }
}

export interface Detections {
  /** [D, 4] in resized-image coordinates, decreasing score. */
  boxes: Float32Array;
  scores: Float32Array;
  /** Class index 1..K-1. */
  labels: Int32Array;
  /** Row of the image's proposals each detection was decoded from. */
  proposalIdx: Int32Array;
}

/** postprocess_detections for one image: class logits [P, K], box regression [P, 4K] and
 *  proposals [P, 4] (host copies) -> detections. */
export function postprocessDetections(
  classLogits: Float32Array, boxRegression: Float32Array, proposals: Float32Array, imageSize: readonly [number, number], cfg: DetectorConfig,
): Detections {
  const K = cfg.num_classes;
  const P = proposals.length / 4;
  if (classLogits.length !== P * K || boxRegression.length !== P * K * 4) {
    throw new ShapeError(`postprocess_detections: ${P} proposals need logits [${P}, ${K}] and regression [${P}, ${4 * K}], got ${classLogits.length} and ${boxRegression.length} values`);
  }
  // [P, K, 4]: every class's box of every proposal.
  const boxes = clipBoxesToImage(decodeBoxes(boxRegression, proposals, cfg.roi_box_coder_weights, cfg.bbox_xform_clip), imageSize);
  const scores = softmaxRows(classLogits, P, K);
  // Drop the background column; flatten proposal-major; strict score threshold.
  const cand: number[] = [];
  for (let p = 0; p < P; p++) for (let c = 1; c < K; c++) if (scores[p * K + c] > cfg.box_score_thresh) cand.push(p * K + c);
  const cb = new Float32Array(cand.length * 4);
  cand.forEach((i, j) => cb.set(boxes.subarray(i * 4, i * 4 + 4), j * 4));
  const big = removeSmallBoxes(cb, cfg.detection_min_size);
  const kb = new Float32Array(big.length * 4);
  const ks = new Float32Array(big.length);
  const kl = new Int32Array(big.length);
  Array.from(big).forEach((j, r) => {
    kb.set(cb.subarray(j * 4, j * 4 + 4), r * 4);
    ks[r] = scores[cand[j]];
    kl[r] = cand[j] % K;
  });
  const keep = Array.from(batchedNms(kb, ks, kl, cfg.box_nms_thresh).subarray(0, cfg.box_detections_per_img));
  const out: Detections = {
    boxes: new Float32Array(keep.length * 4), scores: new Float32Array(keep.length), labels: new Int32Array(keep.length), proposalIdx: new Int32Array(keep.length),
  };
  keep.forEach((r, d) => {
    out.boxes.set(kb.subarray(r * 4, r * 4 + 4), d * 4);
    out.scores[d] = ks[r];
    out.labels[d] = kl[r];
    out.proposalIdx[d] = Math.floor(cand[big[r]] / K);
  });
  return out;
}

/** Row softmax [R, K] in float64, rounded to float32. */
export function softmaxRows(x: Float32Array, R: number, K: number): Float32Array {
  const out = new Float32Array(R * K);
  for (let r = 0; r < R; r++) {
    let m = -Infinity;
    for (let c = 0; c < K; c++) m = Math.max(m, x[r * K + c]);
    let s = 0;
    for (let c = 0; c < K; c++) s += Math.exp(x[r * K + c] - m);
    for (let c = 0; c < K; c++) out[r * K + c] = Math.exp(x[r * K + c] - m) / s;
  }
  return out;
}

/** maskrcnn_inference: sigmoid of each detection's label channel of logits [R, K, M, M]
 *  (host copy) -> [R, M, M]. */
export function selectMaskProbs(logits: Float32Array, labels: Int32Array, K: number, M: number): { selected: Float32Array; probs: Float32Array } {
  const R = labels.length;
  if (logits.length !== R * K * M * M) throw new WeightError(`mask logits hold ${logits.length} values, expected [${R}, ${K}, ${M}, ${M}]`);
  const selected = new Float32Array(R * M * M);
  const probs = new Float32Array(R * M * M);
  for (let r = 0; r < R; r++) {
    const src = logits.subarray((r * K + labels[r]) * M * M, (r * K + labels[r] + 1) * M * M);
    selected.set(src, r * M * M);
    for (let i = 0; i < M * M; i++) probs[r * M * M + i] = 1 / (1 + Math.exp(-src[i]));
  }
  return { selected, probs };
}
