// The `detector` annotator: ground truth from the built-in Mask R-CNN (models/detector),
// with the paper's official rule: per class the top-scoring instance whose label maps to
// the class and whose score is >= 0.05, its mask thresholded at > 0.5; null when no
// instance qualifies. Classes map to COCO categories by name (lower-cased, letters and
// digits only, so 'potted plant' = 'pottedplant'), with COCO's names for the four VOC
// classes named differently (aeroplane, motorbike, sofa, tvmonitor) built in; a custom
// vocabulary works by the same rule and may add aliases (class -> COCO names).
// Classes no COCO category maps to are refused in prepare(), before any generation.
//
// The detector sees the image as it is saved, 8-bit (sample.image.rgba / 255), as the
// paper's pipeline ran the detector on saved images: the ground truth can be recomputed
// from the stored PNG alone.
//
// The rule needs at most one instance per class, so annotate() runs the model's stages
// itself and computes masks only for the chosen instances (the mask head costs ~0.9
// GFLOP per detection, 100 detections ~92 GFLOP, more than the rest of a small image's
// pass); each detection's mask does not depend on the others, so the answer is the rule
// applied to detect()'s full output (checked by test/pipeline/detector_annotator.test.ts).
import { InputError } from '../../gpu/errors.js';
import type { Runtime } from '../../gpu/runtime.js';
import { sha256File } from '../../io/file_hash.js';
import { COCO_CATEGORIES } from '../../models/detector/categories.js';
import type { DetectorArch } from '../../models/detector/config.js';
import { loadMaskRCNN } from '../../models/detector/load.js';
import type { DetectionResult, DetectorImage, MaskRCNN } from '../../models/detector/maskrcnn.js';
import { pasteMaskCrops } from '../../models/detector/paste.js';
import type { Detections } from '../../models/detector/roi_heads.js';
import { resizeBoxes } from '../../nn/boxes.js';
import { scopeAsync } from '../../tensor/scope.js';
import { COCO_TO_VOC_NAMES, normaliseName } from './coco.js';
import type { AnnotateSample, Annotator, PlannedAnnotation } from './types.js';

/** The official rule's thresholds. */
export const DETECTOR_SCORE_THRESHOLD = 0.05;
export const DETECTOR_MASK_THRESHOLD = 0.5;

export interface DetectorAnnotatorOptions {
  /** torchvision .pth or safetensors state dict. */
  checkpoint: string;
  arch?: DetectorArch;
  /** Instances below this score are ignored (default 0.05). */
  scoreThreshold?: number;
  /** Mask pixels with probability > this are inside (default 0.5). */
  maskThreshold?: number;
  /** Extra names: vocabulary class -> the COCO category names that count as it. */
  aliases?: Readonly<Record<string, readonly string[]>>;
  /** The transform's resize bounds (torchvision's 800 / 1333 by default). */
  minSize?: number;
  maxSize?: number;
}

/** COCO labels per vocabulary class, by name (COCO <-> VOC names and aliases included). */
export function cocoLabelsFor(cls: string, aliases: Readonly<Record<string, readonly string[]>> = {}): number[] {
  const wanted = new Set([normaliseName(cls)]);
  for (const [coco, voc] of Object.entries(COCO_TO_VOC_NAMES)) {
    if (wanted.has(normaliseName(voc))) wanted.add(normaliseName(coco));
  }
  for (const a of aliases[cls] ?? []) wanted.add(normaliseName(a));
  const labels: number[] = [];
  COCO_CATEGORIES.forEach((name, label) => {
    if (label > 0 && name !== 'N/A' && wanted.has(normaliseName(name))) labels.push(label);
  });
  return labels;
}

/** The official rule on one image's detections: per class, the top-scoring instance with
 *  a mapped label and score >= scoreThreshold, as a row-major 0/1 mask (> maskThreshold);
 *  null for a class no instance qualifies for. */
export function officialMasks(
  det: DetectionResult, classes: readonly string[], labelsOf: (cls: string) => readonly number[], scoreThreshold: number, maskThreshold: number,
): Map<string, Uint8Array | null> {
  const out = new Map<string, Uint8Array | null>();
  const chosen = chosenDetections(det.scores, det.labels, classes, labelsOf, scoreThreshold);
  for (const [c, cls] of classes.entries()) {
    const best = chosen[c];
    if (best < 0) {
      out.set(cls, null);
      continue;
    }
    const m = det.masks[best];
    const mask = new Uint8Array(det.width * det.height);
    for (let y = 0; y < m.height; y++) {
      for (let x = 0; x < m.width; x++) if (m.data[y * m.width + x] > maskThreshold) mask[(m.y0 + y) * det.width + m.x0 + x] = 1;
    }
    out.set(cls, mask);
  }
  return out;
}

/** For each class in order, the index of its top-scoring qualifying detection (the same
 *  choice as officialMasks: first of equal scores), -1 when none qualifies. */
export function chosenDetections(
  scores: ArrayLike<number>, labels: ArrayLike<number>, classes: readonly string[], labelsOf: (cls: string) => readonly number[], scoreThreshold: number,
): number[] {
  return classes.map((cls) => {
    const wanted = labelsOf(cls);
    let best = -1;
    for (let k = 0; k < scores.length; k++) {
      if (!wanted.includes(labels[k]) || !(scores[k] >= scoreThreshold)) continue;
      if (best < 0 || scores[k] > scores[best]) best = k;
    }
    return best;
  });
}

/** model.detect() on one image, keeping only the detections `choose` picks (ascending
 *  indices into the image's detections, so the score order is kept), whose masks alone
 *  are computed and pasted. */
export async function detectSubset(rt: Runtime, model: MaskRCNN, image: DetectorImage, choose: (d: Detections) => number[]): Promise<DetectionResult> {
  const { width, height } = image;
  return scopeAsync(async () => {
    const { batch, imageSizes } = model.transform(rt, [image]);
    const { body, fpn } = model.backbone.forward(batch);
    for (const t of body) t.dispose();
    const head = model.rpnHead(fpn);
    const host = await Promise.all(head.map(async (h) => ({ objectness: await h.objectness.toArray(), deltas: await h.deltas.toArray(), shape: h.objectness.shape })));
    for (const h of head) {
      h.objectness.dispose();
      h.deltas.dispose();
    }
    const { anchors, numAnchorsPerLevel } = model.anchors([batch.shape[2], batch.shape[3]], fpn.map((f) => [f.shape[2], f.shape[3]] as [number, number]));
    const proposals = model.proposals(host, anchors, numAnchorsPerLevel, imageSizes);
    const [all] = await model.detections(fpn, proposals.map((p) => p.boxes), imageSizes);
    const keep = [...new Set(choose(all))].sort((a, b) => a - b);
    const d: Detections = {
      boxes: new Float32Array(keep.length * 4), scores: new Float32Array(keep.length), labels: new Int32Array(keep.length), proposalIdx: new Int32Array(keep.length),
    };
    keep.forEach((k, j) => {
      d.boxes.set(all.boxes.subarray(4 * k, 4 * k + 4), 4 * j);
      d.scores[j] = all.scores[k];
      d.labels[j] = all.labels[k];
      d.proposalIdx[j] = all.proposalIdx[k];
    });
    const [probs] = await model.maskProbs(fpn, [d], imageSizes);
    const boxes = resizeBoxes(d.boxes, imageSizes[0], [height, width]);
    const { masks } = await pasteMaskCrops(rt, probs, 2 * model.cfg.roi_align.mask_output_size, boxes, [height, width], model.cfg.mask_paste_padding);
    return { width, height, boxes, scores: d.scores, labels: d.labels, masks };
  });
}

/** 8-bit RGBA [H, W, 4] -> RGB in [0, 1], channel-major [3, H, W] (v / 255, as
 *  torchvision's to_tensor / convert_image_dtype on a uint8 image). */
export function rgbOf8Bit(rgba: Uint8Array, width: number, height: number): Float32Array {
  const n = width * height;
  const rgb = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) rgb[c * n + i] = rgba[4 * i + c] / 255;
  return rgb;
}

class DetectorAnnotator implements Annotator {
  readonly name = 'detector';
  constructor(
    private readonly rt: Runtime,
    private readonly model: MaskRCNN,
    readonly identity: Record<string, unknown>,
    private readonly score: number,
    private readonly maskThreshold: number,
    private readonly aliases: Readonly<Record<string, readonly string[]>>,
  ) {}

  private labels(cls: string): number[] {
    return cocoLabelsFor(cls, this.aliases);
  }

  async prepare(samples: readonly PlannedAnnotation[]): Promise<void> {
    const unmapped = [...new Set(samples.flatMap((s) => s.classes))].filter((c) => this.labels(c).length === 0);
    if (unmapped.length) {
      throw new InputError(
        `the detector annotator knows the 80 COCO categories; no category matches class${unmapped.length > 1 ? 'es' : ''} ${unmapped.map((c) => `'${c}'`).join(', ')} by name. `
        + 'Use COCO or VOC class names, or map each class to COCO names with an alias',
      );
    }
  }

  async annotate(sample: AnnotateSample): Promise<Map<string, Uint8Array | null>> {
    const { width, height, rgba } = sample.image;
    if (!(width > 0 && height > 0) || rgba.length !== 4 * width * height) {
      throw new InputError(`detector annotator: sample ${sample.id}'s image is ${height}x${width} with ${rgba.length} RGBA bytes; it needs a non-empty image`);
    }
    const rgb = rgbOf8Bit(rgba, width, height);
    const labelsOf = (c: string) => this.labels(c);
    const det = await detectSubset(this.rt, this.model, { width, height, rgb }, (all) => chosenDetections(all.scores, all.labels, sample.classes, labelsOf, this.score).filter((k) => k >= 0));
    return officialMasks(det, sample.classes, labelsOf, this.score, this.maskThreshold);
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** Loads the checkpoint and returns the annotator (dispose() frees the model). */
export async function detectorAnnotator(rt: Runtime, opts: DetectorAnnotatorOptions): Promise<Annotator & { dispose(): void }> {
  const score = opts.scoreThreshold ?? DETECTOR_SCORE_THRESHOLD;
  const maskThreshold = opts.maskThreshold ?? DETECTOR_MASK_THRESHOLD;
  for (const [k, v] of [['score threshold', score], ['mask threshold', maskThreshold]] as const) {
    if (!(v >= 0 && v <= 1)) throw new InputError(`detector annotator: the ${k} must be in [0, 1], got ${v}`);
  }
  const digest = await sha256File(opts.checkpoint);
  // The model's own box_score_thresh must not drop instances the rule keeps.
  const config = {
    box_score_thresh: Math.min(score, DETECTOR_SCORE_THRESHOLD),
    ...(opts.minSize !== undefined ? { min_size: opts.minSize } : {}),
    ...(opts.maxSize !== undefined ? { max_size: opts.maxSize } : {}),
  };
  const model = await loadMaskRCNN(rt, opts.checkpoint, { arch: opts.arch, config });
  const identity = {
    annotator: 'detector', model: `maskrcnn_resnet50_fpn${model.cfg.arch === 'v2' ? '_v2' : ''}`, checkpoint: digest.path, sha256: digest.sha256,
    score_threshold: score, mask_threshold: maskThreshold, min_size: model.cfg.min_size, max_size: model.cfg.max_size, aliases: opts.aliases ?? {},
  };
  return new DetectorAnnotator(rt, model, identity, score, maskThreshold, opts.aliases ?? {});
}
