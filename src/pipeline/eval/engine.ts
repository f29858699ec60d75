// The evaluation's image source: one test sample -> one generated image with the grounding
// module's masks and DAAM's masks for its classes, from one generateGrounded run (DAAM on
// the same sampling run, so both methods segment the same picture).
//
// Every sample starts from the grounding module's state at creation: in 'official'
// BatchNorm mode a forward advances the module's buffers (spectral-norm u0/sv0, running
// statistics; grounded/generate.ts), so without the restore a sample's masks would depend
// on the samples generated before it, and a resumed run could not equal a fresh one.
import type { Segmodule } from '../../models/grounding/segmodule.js';
import type { StableDiffusion } from '../../models/sd.js';
import { generateGrounded, restoreGroundingState, snapshotGroundingState, type BatchNormMode, type GroundedProgress } from '../grounded.js';
import { InputError } from '../../gpu/errors.js';
import type { TestSample } from './testsets.js';

/** The two methods compared, as named in results.json. */
export const EVAL_METHODS = ['daam', 'grounding'] as const;
export type EvalMethod = (typeof EVAL_METHODS)[number];

/** One generated sample. Pixel arrays are row-major, top row first. */
export interface GeneratedSample {
  width: number;
  height: number;
  /** RGB in [0, 1], [3, height, width]. */
  rgb: Float32Array;
  /** RGBA bytes [height, width, 4]. */
  rgba: Uint8Array;
  /** Per method, one 0/1 mask per class of the sample, in its class order. */
  masks: Record<EvalMethod, Uint8Array[]>;
  /** Non-fatal notes of the generation. */
  warnings: string[];
}

/** Generates one sample; `onStage` reports generation progress. */
export type SampleGenerator = (sample: TestSample, onStage: (p: GroundedProgress) => void) => Promise<GeneratedSample>;

export interface GroundedEvalSettings {
  /** Denoising steps (default 50). */
  steps?: number;
  /** Classifier-free guidance scale (default 7.5). */
  guidanceScale?: number;
  /** Square image side (default: the grounding module's out_size). */
  size?: number;
  /** The module's BatchNorm mode (default 'official', as the official test.py). */
  batchNorm?: BatchNormMode;
}

/** Masks of every class from one generateGrounded result image. */
function masksOf(sample: TestSample, img: { classes: string[]; masks: Uint8Array[]; daam?: Array<{ word: string; mask: Uint8Array }> }): Record<EvalMethod, Uint8Array[]> {
  const grounding = sample.classes.map((c) => {
    const k = img.classes.indexOf(c);
    if (k < 0) throw new InputError(`evaluation: generation returned no grounding mask for '${c}' of sample ${sample.id}`);
    return img.masks[k];
  });
  const daam = sample.classes.map((c) => {
    const w = img.daam?.find((m) => m.word === c);
    if (!w) throw new InputError(`evaluation: DAAM gave no map for '${c}' of sample ${sample.id} (its prompt may be cut at the 77-token limit)`);
    return w.mask;
  });
  return { daam, grounding };
}

/** A SampleGenerator over generateGrounded with `sd` and `seg`; takes a snapshot of the
 *  module's buffers now and restores it before every sample. */
export async function groundedSampleGenerator(sd: StableDiffusion, seg: Segmodule, s: GroundedEvalSettings = {}): Promise<SampleGenerator> {
  const batchNorm = s.batchNorm ?? 'official';
  const initial = batchNorm === 'official' ? await snapshotGroundingState(seg) : undefined;
  return async (sample, onStage) => {
    if (initial) await restoreGroundingState(seg, initial);
    const r = await generateGrounded(sd, seg, {
      prompt: sample.prompt,
      classes: sample.classes,
      seed: sample.seed,
      steps: s.steps,
      guidanceScale: s.guidanceScale,
      height: s.size,
      width: s.size,
      batchNorm,
      daam: true,
      daamWords: sample.classes,
      onProgress: onStage,
    });
    const img = r.images[0];
    return { width: r.width, height: r.height, rgb: img.rgb, rgba: img.rgba, masks: masksOf(sample, img), warnings: r.warnings };
  };
}
