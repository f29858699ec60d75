// The `detector` annotator: ground truth from the built-in Mask R-CNN (models/detector),
// with the paper's official rule: per class the top-scoring instance whose label maps to
// the class and whose score is >= 0.05, its mask thresholded at > 0.5; null when no
// instance qualifies. Classes map to COCO categories by name (lower-cased, letters and
// digits only, so 'potted plant' = 'pottedplant'), with COCO's names for the four VOC
// classes named differently (aeroplane, motorbike, sofa, tvmonitor) built in; a custom
// vocabulary works by the same rule and may add aliases (class -> COCO names).
// Classes no COCO category maps to are refused in prepare(), before any generation.
import { InputError } from '../../gpu/errors.js';
import type { Runtime } from '../../gpu/runtime.js';
import { sha256File } from '../../io/file_hash.js';
import { COCO_CATEGORIES } from '../../models/detector/categories.js';
import type { DetectorArch } from '../../models/detector/config.js';
import { loadMaskRCNN } from '../../models/detector/load.js';
import type { DetectionResult, MaskRCNN } from '../../models/detector/maskrcnn.js';
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
  for (const cls of classes) {
    const labels = labelsOf(cls);
    let best = -1;
    for (let k = 0; k < det.scores.length; k++) {
      if (!labels.includes(det.labels[k]) || !(det.scores[k] >= scoreThreshold)) continue;
      if (best < 0 || det.scores[k] > det.scores[best]) best = k;
    }
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
    const { width, height, rgb } = sample.image;
    const [det] = await this.model.detect(this.rt, [{ width, height, rgb }]);
    return officialMasks(det, sample.classes, (c) => this.labels(c), this.score, this.maskThreshold);
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
