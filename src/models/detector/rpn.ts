// torchvision's RegionProposalNetwork in eval (models/detection/rpn.py, v0.14): RPNHead on
// every FPN level (GPU), then the proposal filter on the host:
//   flatten each level [N, A*C, h, w] -> [N, h*w*A, C] (anchor (y*w + x)*A + a), levels
//   concatenated; per image and level the top-k logits (k = min(pre_nms_top_n, level
//   size)); decode against the anchors with weights (1,1,1,1); sigmoid; clip to the
//   resized image; drop boxes under rpn_min_size; keep score >= rpn_score_thresh;
//   batched NMS with the level as group; keep the first post_nms_top_n.
// torchvision decodes every anchor before the top-k; decoding only the top-k anchors
// gives the same boxes (decodeRpn decodes all of them for parity's rpn.decoded).
import { ShapeError } from '../../gpu/errors.js';
import { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Conv2d } from '../layers/conv.js';
import type { DetectorConfig } from './config.js';
import { clipBoxesToImage, decodeBoxes, gatherRows, removeSmallBoxes } from '../../nn/boxes.js';
import { batchedNms } from '../../nn/nms.js';

/** RPNHead: `conv.i.0` 3x3 convs with bias + ReLU (1 in v1, 2 in v2), then cls_logits
 *  (A channels) and bbox_pred (4A channels), 1x1. */
export class RPNHead extends Module {
  conv: [Conv2d][];
  cls_logits: Conv2d;
  bbox_pred: Conv2d;
  constructor(channels: number, numAnchors: number, convDepth: number) {
    super();
    this.conv = [];
    for (let i = 0; i < convDepth; i++) this.conv.push([new Conv2d(channels, channels, 3, { padding: 1 })]);
    this.cls_logits = new Conv2d(channels, numAnchors, 1);
    this.bbox_pred = new Conv2d(channels, numAnchors * 4, 1);
  }

  /** One level [N, 256, h, w] -> objectness [N, A, h, w], deltas [N, 4A, h, w]. */
  forward(x: Tensor): { objectness: Tensor; deltas: Tensor } {
    let t = x;
    for (const [c] of this.conv) {
      const next = c.forward(t, { activation: 'relu' });
      if (t !== x) t.dispose();
      t = next;
    }
    const out = { objectness: this.cls_logits.forward(t), deltas: this.bbox_pred.forward(t) };
    if (t !== x) t.dispose();
    return out;
  }
}

/** One image's RPN outputs on the host, flattened in torchvision's anchor order. */
export interface FlatRpnOutputs {
  /** [A_total] objectness logits. */
  objectness: Float32Array;
  /** [A_total, 4] (dx, dy, dw, dh). */
  deltas: Float32Array;
}

/** Flattens image `n` of per-level head outputs: objectness [N, A, h, w] and deltas
 *  [N, 4A, h, w] (host copies), levels concatenated. */
export function flattenRpnOutputs(levels: { objectness: Float32Array; deltas: Float32Array; shape: readonly number[] }[], n: number): FlatRpnOutputs {
  const total = levels.reduce((s, l) => s + l.shape[1] * l.shape[2] * l.shape[3], 0);
  const objectness = new Float32Array(total);
  const deltas = new Float32Array(total * 4);
  let at = 0;
  for (const l of levels) {
    const [, A, h, w] = l.shape;
    const plane = h * w;
    for (let p = 0; p < plane; p++) {
      for (let a = 0; a < A; a++) {
        const i = at + p * A + a;
        objectness[i] = l.objectness[(n * A + a) * plane + p];
        for (let j = 0; j < 4; j++) deltas[i * 4 + j] = l.deltas[(n * 4 * A + a * 4 + j) * plane + p];
      }
    }
    at += plane * A;
  }
  return { objectness, deltas };
}

/** Indices of the k largest values of v[start, end), in decreasing value order (ties in
 *  index order; torch.topk's tie order is unspecified). */
export function topKIndices(v: Float32Array, start: number, end: number, k: number): number[] {
  const idx: number[] = [];
  for (let i = start; i < end; i++) idx.push(i);
  idx.sort((a, b) => v[b] - v[a] || a - b);
  return idx.slice(0, Math.min(k, idx.length));
}

export interface Proposals {
  /** [P, 4] x1, y1, x2, y2 in resized-image coordinates, decreasing score. */
  boxes: Float32Array;
  /** [P] sigmoid(objectness). */
  scores: Float32Array;
  /** [P] FPN level of each proposal's anchor. */
  levels: Int32Array;
  /** [P] index of each proposal's anchor. */
  anchorIdx: Int32Array;
}

/** The per-level top-k anchor indices of one image (levels in order), as
 *  rpn.pre_nms_top_n_idx stores them. */
export function preNmsTopN(objectness: Float32Array, numAnchorsPerLevel: readonly number[], preNmsTopN: number): { idx: number[]; level: number[] } {
  const idx: number[] = [];
  const level: number[] = [];
  let start = 0;
  for (const [l, n] of numAnchorsPerLevel.entries()) {
    for (const i of topKIndices(objectness, start, start + n, preNmsTopN)) {
      idx.push(i);
      level.push(l);
    }
    start += n;
  }
  return { idx, level };
}

/** Decoded boxes [A_total, 4] of one image (rpn.decoded), before clipping. */
export function decodeRpn(flat: FlatRpnOutputs, anchors: Float32Array, cfg: DetectorConfig): Float32Array {
  if (anchors.length !== flat.deltas.length) throw new ShapeError(`RPN: ${anchors.length / 4} anchors for ${flat.deltas.length / 4} predictions`);
  return decodeBoxes(flat.deltas, anchors, cfg.rpn_box_coder_weights, cfg.bbox_xform_clip);
}

/** filter_proposals for one image, from its flattened head outputs and the anchors. */
export function filterProposals(
  flat: FlatRpnOutputs, anchors: Float32Array, numAnchorsPerLevel: readonly number[], imageSize: readonly [number, number], cfg: DetectorConfig,
): Proposals {
  const total = numAnchorsPerLevel.reduce((a, b) => a + b, 0);
  if (flat.objectness.length !== total || anchors.length !== total * 4 || flat.deltas.length !== total * 4) {
    throw new ShapeError(`RPN: ${flat.objectness.length} logits, ${flat.deltas.length / 4} deltas and ${anchors.length / 4} anchors for ${total} anchors per image`);
  }
  const top = preNmsTopN(flat.objectness, numAnchorsPerLevel, cfg.rpn_pre_nms_top_n_test);
  const n = top.idx.length;
  const decoded = decodeBoxes(gatherRows(flat.deltas, top.idx, 4), gatherRows(anchors, top.idx, 4), cfg.rpn_box_coder_weights, cfg.bbox_xform_clip);
  const boxes = clipBoxesToImage(decoded, imageSize);
  const scores = new Float32Array(n);
  for (let k = 0; k < n; k++) scores[k] = 1 / (1 + Math.exp(-flat.objectness[top.idx[k]]));
  const keep = removeSmallBoxes(boxes, cfg.rpn_min_size).filter((k) => scores[k] >= cfg.rpn_score_thresh);
  const kb = new Float32Array(keep.length * 4);
  const ks = new Float32Array(keep.length);
  const kl = new Int32Array(keep.length);
  Array.from(keep).forEach((k, j) => {
    kb.set(boxes.subarray(k * 4, k * 4 + 4), j * 4);
    ks[j] = scores[k];
    kl[j] = top.level[k];
  });
  const order = Array.from(batchedNms(kb, ks, kl, cfg.rpn_nms_thresh).subarray(0, cfg.rpn_post_nms_top_n_test));
  const out: Proposals = {
    boxes: new Float32Array(order.length * 4),
    scores: new Float32Array(order.length),
    levels: new Int32Array(order.length),
    anchorIdx: new Int32Array(order.length),
  };
  order.forEach((j, r) => {
    out.boxes.set(kb.subarray(j * 4, j * 4 + 4), r * 4);
    out.scores[r] = ks[j];
    out.levels[r] = kl[j];
    out.anchorIdx[r] = top.idx[keep[j]];
  });
  return out;
}
