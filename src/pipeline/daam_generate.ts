// Generation with DAAM heat maps and no grounding module: the paper's attention baseline on
// its own (DAAM works with any SD 1.x model; the grounding module needs a trained
// checkpoint). The same sampling loop, DAAM accumulator and word maps as generateGrounded
// (grounded/denoise.ts, daam.ts), without the feature taps and the module.
import { InputError } from '../gpu/errors.js';
import { chwToRgba } from '../io/png.js';
import { createScheduler, type SchedulerName } from '../models/schedulers/index.js';
import type { StableDiffusion } from '../models/sd.js';
import { linearCombination } from '../nn/combine.js';
import { concat, slice } from '../nn/layout.js';
import { scope, scopeAsync } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { DAAM_THRESHOLD, DaamAccumulator, daamLayers, daamWordMaps, type DaamWordMap } from './daam.js';
import { denoise } from './grounded/denoise.js';
import { promptWindow, tokenStrings, wordMergeIndices } from './grounded/prompt.js';
import { initialLatents } from './latents.js';
import { checkGenerationSize, deviceLimits, generationModel } from './size_check.js';

export type DaamStage = 'text' | 'denoise' | 'vae' | 'daam';

export interface DaamGenerateOptions {
  prompt: string;
  negativePrompt?: string;
  /** Default 50. */
  steps?: number;
  /** Default 7.5. */
  guidanceScale?: number;
  /** Image i of the batch uses latent stream i of this seed (default 0). */
  seed?: number;
  /** Default 1. */
  batch?: number;
  height: number;
  width: number;
  /** Default: the model's scheduler (as plain generation). */
  scheduler?: SchedulerName;
  /** Words to map, each in the prompt (default: every distinct word of the prompt). */
  words?: string[];
  /** Mask threshold on the normalised map (default 0.4, DAAM's). */
  threshold?: number;
  onProgress?: (p: { stage: DaamStage; step: number; total: number }) => void;
}

export interface DaamImage {
  index: number;
  /** RGB in [0, 1], [3, height, width]. */
  rgb: Float32Array;
  /** 8-bit RGBA [height, width, 4]. */
  rgba: Uint8Array;
  daam: DaamWordMap[];
}

export interface DaamGenerateResult {
  width: number;
  height: number;
  images: DaamImage[];
  settings: Required<Omit<DaamGenerateOptions, 'onProgress'>> & { timesteps: number[] };
  /** Milliseconds per stage (each ends with a GPU sync). */
  timings: Record<DaamStage | 'total', number>;
  warnings: string[];
}

/** Distinct words of a prompt, lower-cased, surrounding punctuation stripped. */
export function promptWords(prompt: string): string[] {
  const words = prompt.toLowerCase().split(/\s+/).map((w) => w.replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '')).filter((w) => w.length > 0);
  return [...new Set(words)];
}

export async function generateWithDaam(sd: StableDiffusion, o: DaamGenerateOptions): Promise<DaamGenerateResult> {
  const rt = sd.rt;
  if (typeof o.prompt !== 'string' || o.prompt.trim() === '') throw new InputError('generateWithDaam: prompt must be a non-empty string');
  const s = {
    prompt: o.prompt, negativePrompt: o.negativePrompt ?? '', steps: o.steps ?? 50, guidanceScale: o.guidanceScale ?? 7.5, seed: o.seed ?? 0,
    batch: o.batch ?? 1, height: o.height, width: o.width, scheduler: o.scheduler ?? sd.defaultScheduler,
    words: o.words ?? promptWords(o.prompt), threshold: o.threshold ?? DAAM_THRESHOLD,
  };
  const bad: string[] = [];
  if (!Number.isInteger(s.steps) || s.steps < 1) bad.push(`steps ${s.steps} must be a positive integer`);
  if (!Number.isFinite(s.guidanceScale)) bad.push(`guidanceScale ${s.guidanceScale} must be finite`);
  if (!Number.isInteger(s.seed) || s.seed < 0 || s.seed > 0xffffffff) bad.push(`seed ${s.seed} must be an integer in 0..2^32-1`);
  if (!Number.isInteger(s.batch) || s.batch < 1) bad.push(`batch ${s.batch} must be a positive integer`);
  if (!(s.threshold >= 0 && s.threshold < 1)) bad.push(`threshold ${s.threshold} must be in [0, 1)`);
  if (bad.length) throw new InputError(`generateWithDaam: ${bad.join('; ')}`);
  checkGenerationSize(generationModel({ unet: sd.unet, vae: sd.vae, textEncoder: sd.textEncoder }, sd.dtype), { height: s.height, width: s.width, batchSize: s.batch }, deviceLimits(rt));

  const warnings: string[] = [];
  const window = sd.textEncoder.config.max_position_embeddings;
  const prompt = promptWindow(sd.tokenizer, s.prompt, window);
  if (prompt.truncated !== undefined) warnings.push(`the prompt was cut to the text encoder's ${window}-token limit; this part was dropped: "${prompt.truncated}"`);
  // DAAM keeps BOS, the prompt's tokens inside the window and the first EOS (trace.py:127).
  const nKeep = prompt.kept + 2;
  const words: Array<{ word: string; mergeIndices: number[] }> = [];
  for (const word of s.words) {
    const all = wordMergeIndices(prompt.tokens, tokenStrings(sd.tokenizer, word.toLowerCase()));
    if (all.length === 0) throw new InputError(`DAAM word '${word}' does not occur in the prompt; list words of the prompt`);
    const mergeIndices = all.filter((i) => i < nKeep - 1);
    if (mergeIndices.length === 0) warnings.push(`DAAM word '${word}' only occurs past the ${window}-token limit: no map`);
    else words.push({ word, mergeIndices });
  }

  const f = sd.vae.scaleFactor;
  const [lh, lw] = [s.height / f, s.width / f];
  const B = s.batch;
  const timings = { text: 0, denoise: 0, vae: 0, daam: 0, total: 0 };
  const t0 = performance.now();
  let mark = t0;
  const done = async (stage: DaamStage) => {
    await rt.sync();
    const now = performance.now();
    timings[stage] += now - mark;
    mark = now;
  };
  const progress = (stage: DaamStage, step: number, total: number) => o.onProgress?.({ stage, step, total });

  return scopeAsync(async () => {
    const text = scope(() => {
      const both = sd.encodePrompts([s.negativePrompt, s.prompt]);
      return concat([...Array<Tensor>(B).fill(slice(both, 0, 0, 1)), ...Array<Tensor>(B).fill(slice(both, 0, 1, 2))], 0);
    });
    await done('text');
    progress('text', 1, 1);
    const scheduler = createScheduler(s.scheduler, sd.schedulerConfig);
    scheduler.setTimesteps(s.steps);
    const timesteps = [...scheduler.timesteps];
    const latents = initialLatents(rt, s.seed, [B, sd.unet.resolved.inChannels, lh, lw], scheduler.initNoiseSigma);
    const acc = new DaamAccumulator(daamLayers(sd.unet, lh, lw), B);
    try {
      const run = await denoise(sd, {
        text, latents, scheduler, guidanceScale: s.guidanceScale, featureStep: -1, taps: [], sink: acc,
        onStep: o.onProgress ? (st) => progress('denoise', st.index + 1, s.steps) : undefined,
      });
      await done('denoise');
      const scale = sd.vae.config.scaling_factor;
      const pixels = await scope(() => linearCombination([[0.5, sd.vae.decode(rt, linearCombination([[1 / scale, run.latents]]))]], 0.5, [0, 1])).toArray();
      const plane = 3 * s.height * s.width;
      const images: DaamImage[] = Array.from({ length: B }, (_, b) => ({
        index: b, rgb: pixels.slice(b * plane, (b + 1) * plane), rgba: chwToRgba(pixels, b * plane, 3, s.height, s.width), daam: [],
      }));
      await done('vae');
      progress('vae', 1, 1);
      for (let b = 0; b < B; b++) {
        const maps = acc.tokenMaps(b, nKeep, lh, lw);
        const host = await maps.toArray();
        maps.dispose();
        images[b].daam = await daamWordMaps(rt, host, [lh, lw], [s.height, s.width], words, s.threshold);
        progress('daam', b + 1, B);
      }
      await done('daam');
      timings.total = performance.now() - t0;
      return { width: s.width, height: s.height, images, settings: { ...s, timesteps }, timings, warnings };
    } finally {
      acc.dispose();
    }
  });
}
