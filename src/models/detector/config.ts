// Mask R-CNN configuration: torchvision 0.14's keyword arguments of MaskRCNN(...) and
// GeneralizedRCNNTransform (the `settings` of a detector fixture) plus the constants its
// builders fix (box-coder weights, anchor sizes, RoIAlign and level-mapper settings, the
// `constants` of a fixture). Defaults are torchvision's; `detectorConfig` checks every
// value and lists each bad one.
import { ShapeError } from '../../gpu/errors.js';

export type DetectorArch = 'v1' | 'v2';

export interface DetectorConfig {
  /** 'v1' maskrcnn_resnet50_fpn (FrozenBatchNorm2d eps 0, TwoMLPHead), 'v2'
   *  maskrcnn_resnet50_fpn_v2 (BatchNorm2d eps 1e-5 everywhere, 4-conv box head). */
  arch: DetectorArch;
  num_classes: number;
  min_size: number;
  max_size: number;
  image_mean: [number, number, number];
  image_std: [number, number, number];
  size_divisible: number;
  rpn_pre_nms_top_n_test: number;
  rpn_post_nms_top_n_test: number;
  rpn_nms_thresh: number;
  rpn_score_thresh: number;
  box_score_thresh: number;
  box_nms_thresh: number;
  box_detections_per_img: number;
  rpn_box_coder_weights: [number, number, number, number];
  roi_box_coder_weights: [number, number, number, number];
  /** log(1000 / 16): the largest dw, dh before exp. */
  bbox_xform_clip: number;
  rpn_min_size: number;
  detection_min_size: number;
  /** One size per FPN level ('0'..'3', 'pool'). */
  anchor_sizes: number[][];
  anchor_aspect_ratios: number[][];
  roi_align: { sampling_ratio: number; aligned: boolean; box_output_size: number; mask_output_size: number };
  level_mapper: { canonical_scale: number; canonical_level: number; eps: number };
  /** paste_masks_in_image padding (torchvision: 1). */
  mask_paste_padding: number;
}

export const DETECTOR_DEFAULTS: Omit<DetectorConfig, 'arch'> = {
  num_classes: 91,
  min_size: 800,
  max_size: 1333,
  image_mean: [0.485, 0.456, 0.406],
  image_std: [0.229, 0.224, 0.225],
  size_divisible: 32,
  rpn_pre_nms_top_n_test: 1000,
  rpn_post_nms_top_n_test: 1000,
  rpn_nms_thresh: 0.7,
  rpn_score_thresh: 0.0,
  box_score_thresh: 0.05,
  box_nms_thresh: 0.5,
  box_detections_per_img: 100,
  rpn_box_coder_weights: [1, 1, 1, 1],
  roi_box_coder_weights: [10, 10, 5, 5],
  bbox_xform_clip: Math.log(1000 / 16),
  rpn_min_size: 1e-3,
  detection_min_size: 1e-2,
  anchor_sizes: [[32], [64], [128], [256], [512]],
  anchor_aspect_ratios: [[0.5, 1, 2], [0.5, 1, 2], [0.5, 1, 2], [0.5, 1, 2], [0.5, 1, 2]],
  roi_align: { sampling_ratio: 2, aligned: false, box_output_size: 7, mask_output_size: 14 },
  level_mapper: { canonical_scale: 224, canonical_level: 4, eps: 1e-6 },
  mask_paste_padding: 1,
};

/** FPN levels the RPN sees: '0'..'3' from layer1..layer4, plus 'pool'. */
export const FPN_LEVELS = 5;

/** The config with torchvision's defaults filled in, checked. */
export function detectorConfig(raw: Partial<DetectorConfig> & { arch: DetectorArch }): DetectorConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ShapeError('invalid detector config: expected an object of MaskRCNN keyword arguments');
  const c: DetectorConfig = { ...DETECTOR_DEFAULTS, ...raw };
  const bad: string[] = [];
  const show = (v: unknown) => JSON.stringify(v);
  if (c.arch !== 'v1' && c.arch !== 'v2') bad.push(`arch = ${show(c.arch)} must be 'v1' (maskrcnn_resnet50_fpn) or 'v2' (maskrcnn_resnet50_fpn_v2)`);
  const posInt = (k: keyof DetectorConfig) => {
    if (!Number.isInteger(c[k]) || (c[k] as number) < 1) bad.push(`${k} = ${show(c[k])} must be a positive integer`);
  };
  for (const k of ['num_classes', 'min_size', 'max_size', 'size_divisible', 'rpn_pre_nms_top_n_test', 'rpn_post_nms_top_n_test', 'box_detections_per_img'] as const) posInt(k);
  if (Number.isInteger(c.num_classes) && c.num_classes < 2) bad.push(`num_classes = ${c.num_classes} must include the background class and at least one object class`);
  const unit = (k: keyof DetectorConfig) => {
    const v = c[k] as number;
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) bad.push(`${k} = ${show(v)} must be a number in [0, 1]`);
  };
  for (const k of ['rpn_nms_thresh', 'rpn_score_thresh', 'box_score_thresh', 'box_nms_thresh'] as const) unit(k);
  const triple = (k: 'image_mean' | 'image_std', positive: boolean) => {
    const v = c[k];
    if (!Array.isArray(v) || v.length !== 3 || v.some((x) => typeof x !== 'number' || !Number.isFinite(x) || (positive && x <= 0))) {
      bad.push(`${k} = ${show(v)} must be 3 ${positive ? 'positive ' : ''}numbers (RGB)`);
    }
  };
  triple('image_mean', false);
  triple('image_std', true);
  const quad = (k: 'rpn_box_coder_weights' | 'roi_box_coder_weights') => {
    const v = c[k];
    if (!Array.isArray(v) || v.length !== 4 || v.some((x) => typeof x !== 'number' || !(x > 0))) bad.push(`${k} = ${show(v)} must be 4 positive numbers (wx, wy, ww, wh)`);
  };
  quad('rpn_box_coder_weights');
  quad('roi_box_coder_weights');
  for (const k of ['bbox_xform_clip', 'rpn_min_size', 'detection_min_size'] as const) {
    if (typeof c[k] !== 'number' || !(c[k] >= 0)) bad.push(`${k} = ${show(c[k])} must be a non-negative number`);
  }
  if (!Array.isArray(c.anchor_sizes) || c.anchor_sizes.length !== FPN_LEVELS || c.anchor_sizes.some((s) => !Array.isArray(s) || s.length !== 1 || !(s[0] > 0))) {
    bad.push(`anchor_sizes = ${show(c.anchor_sizes)} must hold one positive size for each of the ${FPN_LEVELS} FPN levels ('0'..'3', 'pool')`);
  }
  const ratios = c.anchor_aspect_ratios;
  if (!Array.isArray(ratios) || ratios.length !== FPN_LEVELS || ratios.some((r) => !Array.isArray(r) || r.length !== 3 || r.some((x) => !(x > 0)))) {
    bad.push(`anchor_aspect_ratios = ${show(ratios)} must hold 3 positive ratios for each of the ${FPN_LEVELS} levels (the RPN head predicts 3 anchors per location)`);
  }
  const ra = c.roi_align;
  if (typeof ra !== 'object' || ra === null || !Number.isInteger(ra.sampling_ratio) || !(ra.sampling_ratio > 0 || ra.sampling_ratio === -1)
    || typeof ra.aligned !== 'boolean' || !Number.isInteger(ra.box_output_size) || ra.box_output_size < 1
    || !Number.isInteger(ra.mask_output_size) || ra.mask_output_size < 1) {
    bad.push(`roi_align = ${show(ra)} needs an integer sampling_ratio (> 0, or -1 for adaptive), boolean aligned and positive box/mask output sizes`);
  }
  const lm = c.level_mapper;
  if (typeof lm !== 'object' || lm === null || !(lm.canonical_scale > 0) || !Number.isInteger(lm.canonical_level) || !(lm.eps >= 0)) {
    bad.push(`level_mapper = ${show(lm)} needs a positive canonical_scale, an integer canonical_level and eps >= 0`);
  }
  if (Number.isInteger(c.size_divisible) && c.size_divisible % 32 !== 0) {
    bad.push(`size_divisible = ${c.size_divisible} must be a multiple of 32, so that each FPN level is exactly half the one above it`);
  }
  if (ra && ra.aligned) bad.push('roi_align.aligned = true: MultiScaleRoIAlign always pools with aligned=False');
  if (!Number.isInteger(c.mask_paste_padding) || c.mask_paste_padding < 0) bad.push(`mask_paste_padding = ${show(c.mask_paste_padding)} must be a non-negative integer`);
  if (bad.length) throw new ShapeError(`invalid detector config:\n  ${bad.join('\n  ')}`);
  return c;
}

/** The box head's input: 256 channels of a box_output_size^2 RoIAlign window. */
export const FPN_CHANNELS = 256;
