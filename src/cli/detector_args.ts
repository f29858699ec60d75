// The built-in Mask R-CNN as an annotator (pipeline/annotate/detector.ts), the same
// options in `dataset build` and `eval`:
//   --annotator detector --detector CKPT [--detector-arch v1|v2] [--detector-score 0.05]
//   [--detector-min-size 800] [--detector-max-size 1333]
// Checked before any model loads: --detector* without --annotator detector, a missing
// checkpoint, bad numbers. A checkpoint of the wrong architecture is refused when it loads
// (before the SD model), with its missing and unexpected names.
import { existsSync, statSync } from 'node:fs';
import { InputError, UsageError } from '../gpu/errors.js';
import type { DetectorArch } from '../models/detector/config.js';
import { DETECTOR_SCORE_THRESHOLD, type DetectorAnnotatorOptions } from '../pipeline/annotate/detector.js';
import { choiceOption, numberOption, type NumberSpec } from './args.js';

/** parseArgs option specs. */
export const DETECTOR_ARG_OPTIONS = {
  detector: { type: 'string' },
  'detector-arch': { type: 'string' },
  'detector-score': { type: 'string' },
  'detector-min-size': { type: 'string' },
  'detector-max-size': { type: 'string' },
} as const;

export const DETECTOR_NUMERIC: Record<string, NumberSpec> = {
  'detector-score': { min: 0, max: 1, why: 'a class score; the official rule keeps instances with score >= 0.05' },
  'detector-min-size': { integer: true, min: 1, max: 1 << 14, why: 'pixels: the transform resizes the shorter side to this' },
  'detector-max-size': { integer: true, min: 1, max: 1 << 14, why: 'pixels: the longer side is capped at this' },
};

/** Usage lines of the options. */
export const DETECTOR_USAGE_LINES = [
  '  --annotator detector   ground truth from the built-in Mask R-CNN (official rule: per class the',
  '                         top-scoring instance whose COCO label maps to it, score >= 0.05, mask > 0.5)',
  '  --detector CKPT        torchvision maskrcnn_resnet50_fpn (v1) or _v2 state dict, .pth or .safetensors',
  '  --detector-arch A      v1 or v2 (default: from the checkpoint\'s names)',
  '  --detector-score S     score threshold of the rule (default 0.05)',
  '  --detector-min-size N  --detector-max-size N: the transform\'s resize bounds (default 800 / 1333)',
];

type Values = { [K in keyof typeof DETECTOR_ARG_OPTIONS]?: string };

/** The detector annotator's options, or undefined for another annotator; UsageError for
 *  detector options without --annotator detector or without --detector, InputError for a
 *  checkpoint that is not there. */
export function detectorOptions(annotator: string, values: Values): DetectorAnnotatorOptions | undefined {
  const given = (Object.keys(DETECTOR_ARG_OPTIONS) as (keyof Values)[]).filter((k) => values[k] !== undefined);
  if (annotator !== 'detector') {
    if (given.length) throw new UsageError(`${given.map((k) => `--${k}`).join(', ')} ${given.length > 1 ? 'are' : 'is'} for --annotator detector (the annotator is ${annotator})`);
    return undefined;
  }
  const ckpt = values.detector;
  if (ckpt === undefined) throw new UsageError('--annotator detector needs --detector CKPT (a torchvision Mask R-CNN state dict, .pth or .safetensors)');
  const arch = choiceOption<DetectorArch>('detector-arch', values['detector-arch'], ['v1', 'v2']);
  const num = (k: keyof typeof DETECTOR_NUMERIC) => (values[k as keyof Values] === undefined ? undefined : numberOption(k, values[k as keyof Values], 0, DETECTOR_NUMERIC[k]));
  const scoreThreshold = num('detector-score') ?? DETECTOR_SCORE_THRESHOLD;
  const minSize = num('detector-min-size');
  const maxSize = num('detector-max-size');
  if (!existsSync(ckpt)) throw new InputError(`--detector ${ckpt} does not exist; give a torchvision Mask R-CNN checkpoint (.pth or .safetensors)`);
  if (!statSync(ckpt).isFile()) throw new InputError(`--detector ${ckpt} is not a file; give a torchvision Mask R-CNN checkpoint (.pth or .safetensors)`);
  return { checkpoint: ckpt, arch, scoreThreshold, minSize, maxSize };
}
