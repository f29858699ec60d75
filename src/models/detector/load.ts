// A Mask R-CNN from a checkpoint file: torchvision's published .pth (a plain state_dict,
// read by io/torch_pickle without Python) or the same tensors as safetensors. The
// architecture is taken from the names when not given: v1's box head is `fc6`/`fc7`,
// v2's is `box_head.0..3` + `box_head.5`. A checkpoint of another architecture fails in
// loadWeights with its missing and unexpected names, counted and the first few shown.
import { WeightError } from '../../gpu/errors.js';
import type { Runtime } from '../../gpu/runtime.js';
import { loadCheckpoint } from '../../io/torch_pickle.js';
import { describeWeightNames } from '../../io/weight_kind.js';
import type { WeightSource } from '../../nn/module.js';
import type { DetectorArch, DetectorConfig } from './config.js';
import { MaskRCNN } from './maskrcnn.js';

/** v1 / v2 from a state dict's names, or null when neither box head is there. */
export function detectorArchOf(names: readonly string[]): DetectorArch | null {
  const has = new Set(names);
  if (has.has('roi_heads.box_head.fc6.weight')) return 'v1';
  if (has.has('roi_heads.box_head.5.weight')) return 'v2';
  return null;
}

export interface LoadDetectorOptions {
  /** Default: from the checkpoint's names. */
  arch?: DetectorArch;
  /** Settings other than torchvision's defaults (thresholds, sizes). */
  config?: Partial<Omit<DetectorConfig, 'arch'>>;
}

/** Builds the model for `source` and loads it (norms folded). */
export async function loadMaskRCNNFrom(rt: Runtime, source: WeightSource, opts: LoadDetectorOptions = {}): Promise<MaskRCNN> {
  const names = source.names();
  const arch = opts.arch ?? detectorArchOf(names);
  if (!arch) {
    throw new WeightError(
      `${source.description} is not a torchvision Mask R-CNN checkpoint: it has neither roi_heads.box_head.fc6.weight (maskrcnn_resnet50_fpn, v1) `
      + `nor roi_heads.box_head.5.weight (maskrcnn_resnet50_fpn_v2); it looks like ${describeWeightNames(names)}. Give a Mask R-CNN state_dict, or --arch to see every missing name`,
    );
  }
  // A fine-tuned checkpoint has its own class count: take it from the predictor.
  const cls = 'roi_heads.box_predictor.cls_score.weight';
  const numClasses = opts.config?.num_classes ?? (names.includes(cls) ? source.shape(cls)[0] : undefined);
  const model = new MaskRCNN({ ...opts.config, ...(numClasses !== undefined ? { num_classes: numClasses } : {}), arch });
  try {
    await model.load(rt, source);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** loadMaskRCNNFrom over a checkpoint file (.pth/.pt/.bin/.ckpt or .safetensors). */
export async function loadMaskRCNN(rt: Runtime, path: string, opts: LoadDetectorOptions = {}): Promise<MaskRCNN> {
  const source = await loadCheckpoint(path);
  try {
    return await loadMaskRCNNFrom(rt, source, opts);
  } finally {
    await source.close();
  }
}
