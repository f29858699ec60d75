// The synthetic dataset's image source: one planned sample -> one generateGrounded run
// (its prompt, classes and seed) -> the image and the grounding module's mask logits.
//
// Every sample starts from the grounding module's state at creation: in 'official'
// BatchNorm mode a forward advances the module's buffers (grounded/generate.ts), so
// without the restore a sample would depend on the samples made before it in the same
// process, and shards or a resumed run would not equal one uninterrupted run.
import type { Segmodule } from '../../models/grounding/segmodule.js';
import type { StableDiffusion } from '../../models/sd.js';
import { InputError } from '../../gpu/errors.js';
import { generateGrounded, restoreGroundingState, snapshotGroundingState, type BatchNormMode } from '../grounded.js';
import type { SynthGenerator } from './run.js';

export interface SynthGenerationSettings {
  /** Denoising steps (default 50, DDIM as the official code). */
  steps?: number;
  /** Classifier-free guidance scale (default 7.5, the official test setting). */
  guidanceScale?: number;
  /** Square image side (default: the grounding module's out_size). */
  size?: number;
  /** The module's BatchNorm mode (default 'official', as the official test.py). */
  batchNorm?: BatchNormMode;
}

/** A SynthGenerator over generateGrounded with `sd` and `seg`; snapshots the module's
 *  buffers now and restores them before every sample. */
export async function groundedSynthGenerator(sd: StableDiffusion, seg: Segmodule, s: SynthGenerationSettings = {}): Promise<SynthGenerator> {
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
      onProgress: onStage,
    });
    const img = r.images[0];
    const logits = sample.classes.map((c) => {
      const k = img.classes.indexOf(c);
      if (k < 0) throw new InputError(`synth: generation returned no mask for '${c}' of sample ${sample.id}`);
      return img.logits[k];
    });
    return { width: r.width, height: r.height, rgba: img.rgba, logits, warnings: r.warnings };
  };
}
