// generateGrounded: the paper's grounded generation end to end (Li et al., ICCV 2023,
// official code Lipurple/Grounded-Diffusion), optionally with DAAM maps of the same run:
// text -> DDIM sampling with classifier-free guidance (UNet taps at the feature step,
// cross-attention probabilities every step) -> VAE decode -> per image: grouped features
// and class embeddings through the grounding module -> masks; DAAM -> word maps.
import { InputError } from '../../gpu/errors.js';
import { chwToRgba } from '../../io/png.js';
import { groundingForward } from '../../models/grounding/forward.js';
import type { Segmodule } from '../../models/grounding/segmodule.js';
import { createScheduler } from '../../models/schedulers/index.js';
import type { StableDiffusion } from '../../models/sd.js';
import { linearCombination } from '../../nn/combine.js';
import { concat, slice } from '../../nn/layout.js';
import { namedParams } from '../../nn/module.js';
import { scope, scopeAsync } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';
import { DAAM_THRESHOLD, DaamAccumulator, daamLayers, daamWordMaps, } from '../daam.js';
import { initialLatents } from '../latents.js';
import { checkGenerationSize, deviceLimits, generationModel } from '../size_check.js';
import { denoise } from './denoise.js';
import { checkModuleFits, featureLayout, groupFeatures } from './features.js';
import { classesFromPrompt, locateClasses, promptWindow, tokenStrings, wordMergeIndices } from './prompt.js';
import { classEmbeddings } from './text.js';
import type { GroundedImage, GroundedOptions, GroundedResult, GroundedSettings, GroundedStage, GroundedTimings } from './types.js';

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
/** Step counts tried when suggesting one whose schedule contains the asked featureStep. */
const MAX_SUGGESTED_STEPS = 1000;

/** Distinct words of a prompt, lower-cased, surrounding punctuation stripped. */
function promptWords(prompt: string): string[] {
  const words = prompt.toLowerCase().split(/\s+/).map((w) => w.replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '')).filter((w) => w.length > 0);
  return [...new Set(words)];
}

/** Options with defaults, checked; every problem in one InputError. */
function resolveSettings(sd: StableDiffusion, seg: Segmodule, o: GroundedOptions): GroundedSettings {
  const bad: string[] = [];
  if (typeof o.prompt !== 'string' || o.prompt.trim() === '') throw new InputError('generateGrounded: prompt must be a non-empty string');
  const side = seg.config.feature_res.highest * sd.vae.scaleFactor;
  const s = {
    prompt: o.prompt,
    negativePrompt: o.negativePrompt ?? '',
    steps: o.steps ?? 50,
    guidanceScale: o.guidanceScale ?? 7.5,
    seed: o.seed ?? 0,
    batch: o.batch ?? 1,
    height: o.height ?? side,
    width: o.width ?? side,
    scheduler: o.scheduler ?? 'ddim',
    batchNorm: o.batchNorm ?? 'official',
    threshold: o.threshold ?? 0.5,
    daam: o.daam ?? false,
    daamThreshold: o.daamThreshold ?? DAAM_THRESHOLD,
  };
  if (typeof s.negativePrompt !== 'string') bad.push('negativePrompt must be a string');
  if (!isInt(s.steps) || s.steps < 1) bad.push(`steps ${s.steps} must be a positive integer`);
  if (!Number.isFinite(s.guidanceScale)) bad.push(`guidanceScale ${s.guidanceScale} must be a finite number`);
  if (!isInt(s.seed) || s.seed < 0 || s.seed > 0xffffffff) bad.push(`seed ${s.seed} must be an integer in 0..2^32-1`);
  if (!isInt(s.batch) || s.batch < 1) bad.push(`batch ${s.batch} must be a positive integer`);
  if (s.batchNorm !== 'official' && s.batchNorm !== 'eval') bad.push(`batchNorm '${String(s.batchNorm)}' must be 'official' or 'eval'`);
  if (!(s.threshold > 0 && s.threshold < 1)) bad.push(`threshold ${s.threshold} must be in (0, 1)`);
  if (typeof s.daam !== 'boolean') bad.push(`daam must be true or false, got ${String(s.daam)}`);
  if (!(s.daamThreshold >= 0 && s.daamThreshold < 1)) bad.push(`daamThreshold ${s.daamThreshold} must be in [0, 1)`);
  if (o.classes !== undefined && (!Array.isArray(o.classes) || o.classes.length === 0 || o.classes.some((c) => typeof c !== 'string'))) {
    bad.push('classes must be a non-empty list of class names');
  }
  if (o.featureStep !== undefined && !isInt(o.featureStep)) bad.push(`featureStep ${o.featureStep} must be an integer DDPM timestep`);
  if (bad.length) throw new InputError(`generateGrounded: ${bad.join('; ')}`);
  checkGenerationSize(generationModel({ unet: sd.unet, vae: sd.vae, textEncoder: sd.textEncoder }, sd.dtype), { height: s.height, width: s.width, batchSize: s.batch }, deviceLimits(sd.rt));

  const classes = (o.classes ?? classesFromPrompt(s.prompt)).map((c) => c.trim());
  const dup = classes.find((c, i) => classes.findIndex((d) => d.toLowerCase() === c.toLowerCase()) !== i);
  if (dup !== undefined) throw new InputError(`generateGrounded: class '${dup}' is given twice; list each class once`);
  const lower = new Set(classes.map((c) => c.toLowerCase()));
  const daamWords = o.daamWords ?? [...classes, ...promptWords(s.prompt).filter((w) => !lower.has(w))];

  const schedule = (steps: number) => {
    const sch = createScheduler(s.scheduler, sd.schedulerConfig);
    sch.setTimesteps(steps);
    return [...sch.timesteps];
  };
  const timesteps = schedule(s.steps);
  const featureStep = o.featureStep ?? timesteps[timesteps.length - 1];
  const featureStepIndex = timesteps.indexOf(featureStep);
  if (featureStepIndex < 0) {
    const near = [...timesteps].sort((a, b) => Math.abs(a - featureStep) - Math.abs(b - featureStep)).slice(0, 2);
    let fits = '';
    for (let n = s.steps + 1; n <= MAX_SUGGESTED_STEPS && !fits; n++) if (schedule(n).includes(featureStep)) fits = `, or use ${n} steps (their schedule includes ${featureStep})`;
    throw new InputError(
      `generateGrounded: featureStep ${featureStep} is not a timestep of the ${s.steps}-step ${s.scheduler} schedule (${timesteps.join(', ')}); ` +
        `features come from a UNet call the sampler makes, as in the official code: pick ${near.join(' or ')}${fits}`,
    );
  }
  return { ...s, classes, timesteps, featureStep, featureStepIndex, daamWords };
}

/**
 * Generates `batch` images for one prompt and grounds `classes` in each with the grounding
 * module `seg` (and, with `daam`, DAAM maps of the prompt's words from the same run).
 *
 * The module must fit the model: its feature_channels are twice the UNet widths of the 25
 * block outputs, feature_res the latent sizes of the four groups, context_dim the text
 * width; a mismatch is a WeightError naming each difference.
 *
 * Batches: image b's features are cat([uncond_b, cond_b]) of the shared CFG batch, and the
 * module runs image by image in batch order, exactly as the official test.py run once per
 * image with batch 1 (its own reshape would mix the images of a larger batch). In
 * 'official' BatchNorm mode every image's forward advances the module's buffers (u0/sv0
 * of the spectral-norm convolutions; the running statistics, which this mode does not
 * read), so image b's masks depend on the forwards before it, in this call and in earlier
 * calls. For repeatable masks across calls, reload the module's weights (loadWeights)
 * or wrap calls in snapshotGroundingState / restoreGroundingState; 'eval' mode reads
 * and changes no buffer.
 */
export async function generateGrounded(sd: StableDiffusion, seg: Segmodule, opts: GroundedOptions): Promise<GroundedResult> {
  const rt = sd.rt;
  const s = resolveSettings(sd, seg, opts);
  const warnings: string[] = [];
  const window = sd.textEncoder.config.max_position_embeddings;
  const vaeFactor = sd.vae.scaleFactor;
  const [lh, lw] = [s.height / vaeFactor, s.width / vaeFactor];
  const layout = featureLayout(sd.unet, lh, lw);
  checkModuleFits(seg.config, layout, sd.textEncoder.config.hidden_size, vaeFactor, 'the grounding module');
  const prompt = promptWindow(sd.tokenizer, s.prompt, window);
  if (prompt.truncated !== undefined) {
    warnings.push(`the prompt was cut to the text encoder's ${window}-token limit; this part was dropped: "${prompt.truncated}"`);
  }
  const negative = promptWindow(sd.tokenizer, s.negativePrompt, window);
  if (negative.truncated !== undefined) warnings.push(`the negative prompt was cut to ${window} tokens; this part was dropped: "${negative.truncated}"`);
  locateClasses(sd.tokenizer, prompt, s.classes, window);
  // DAAM keeps BOS, the prompt's tokens inside the window and the first EOS (trace.py:127).
  const nKeep = prompt.kept + 2;
  const words = s.daam ? daamWordList(sd, s.daamWords, prompt.tokens, nKeep, warnings) : [];

  const timings: GroundedTimings = { text: 0, denoise: 0, vae: 0, grounding: 0, daam: 0, total: 0 };
  const t0 = performance.now();
  let mark = t0;
  const done = async (stage: GroundedStage) => {
    await rt.sync();
    const now = performance.now();
    timings[stage] += now - mark;
    mark = now;
  };
  const progress = (stage: GroundedStage, step: number, total: number) => opts.onProgress?.({ stage, step, total });
  const B = s.batch;

  return scopeAsync(async () => {
    const text = scope(() => {
      const both = sd.encodePrompts([s.negativePrompt, s.prompt]);
      return concat([...Array<Tensor>(B).fill(slice(both, 0, 0, 1)), ...Array<Tensor>(B).fill(slice(both, 0, 1, 2))], 0);
    });
    const classText = classEmbeddings(sd, s.classes);
    await done('text');
    progress('text', 1, 1);

    const scheduler = createScheduler(s.scheduler, sd.schedulerConfig);
    scheduler.setTimesteps(s.steps);
    const latentsT = initialLatents(rt, s.seed, [B, sd.unet.resolved.inChannels, lh, lw], scheduler.initNoiseSigma);
    const daam = s.daam ? new DaamAccumulator(daamLayers(sd.unet, lh, lw), B) : undefined;
    try {
      const run = await denoise(sd, {
        text, latents: latentsT, scheduler, guidanceScale: s.guidanceScale, featureStep: s.featureStepIndex,
        taps: layout.map((t) => t.name), sink: daam,
        onStep: opts.onProgress ? (st) => progress('denoise', st.index + 1, s.steps) : undefined,
      });
      await done('denoise');
      // Synced: the UNet's cached free buffers go back before the VAE allocates its maps.
      rt.pool.trim();

      const scale = sd.vae.config.scaling_factor;
      const pixels = await scope(() => linearCombination([[0.5, sd.vae.decode(rt, linearCombination([[1 / scale, run.latents]]))]], 0.5, [0, 1])).toArray();
      const plane = 3 * s.height * s.width;
      const images: GroundedImage[] = Array.from({ length: B }, (_, b) => ({
        index: b,
        rgb: pixels.slice(b * plane, (b + 1) * plane),
        rgba: chwToRgba(pixels, b * plane, 3, s.height, s.width),
        classes: [...s.classes],
        masks: [],
        logits: [],
      }));
      await done('vae');
      progress('vae', 1, 1);

      const cut = Math.log(s.threshold / (1 - s.threshold));
      const pixelsPerMask = s.height * s.width;
      for (let b = 0; b < B; b++) {
        const logits = scope(() => {
          const features = groupFeatures(layout, run.taps, b, B);
          const out = groundingForward(seg, [{ features, textEmbedding: classText }], { training: s.batchNorm === 'official', outSize: s.height });
          return out.logits[0];
        });
        const all = await logits.toArray();
        logits.dispose();
        for (let c = 0; c < s.classes.length; c++) {
          const l = all.slice(c * pixelsPerMask, (c + 1) * pixelsPerMask);
          images[b].logits.push(l);
          images[b].masks.push(Uint8Array.from(l, (x) => (x > cut ? 1 : 0)));
        }
        progress('grounding', b + 1, B);
      }
      for (const t of run.taps.values()) t.dispose();
      run.latents.dispose();
      await done('grounding');

      if (daam) {
        for (let b = 0; b < B; b++) {
          const maps = daam.tokenMaps(b, nKeep, lh, lw);
          const host = await maps.toArray();
          maps.dispose();
          images[b].daam = await daamWordMaps(rt, host, [lh, lw], [s.height, s.width], words, s.daamThreshold);
          progress('daam', b + 1, B);
        }
        await done('daam');
      }
      timings.total = performance.now() - t0;
      return { width: s.width, height: s.height, images, settings: s, timings, warnings };
    } finally {
      daam?.dispose();
    }
  });
}

/** DAAM's merge indices per word, limited to the kept token maps. */
function daamWordList(sd: StableDiffusion, words: string[], promptTokens: string[], nKeep: number, warnings: string[]): Array<{ word: string; mergeIndices: number[] }> {
  const out: Array<{ word: string; mergeIndices: number[] }> = [];
  for (const word of words) {
    if (typeof word !== 'string' || word.trim() === '') throw new InputError(`generateGrounded: daamWords has an empty entry; list words of the prompt`);
    const all = wordMergeIndices(promptTokens, tokenStrings(sd.tokenizer, word.toLowerCase()));
    if (all.length === 0) throw new InputError(`generateGrounded: DAAM word '${word}' does not occur in the prompt; list words of the prompt in daamWords`);
    const mergeIndices = all.filter((i) => i < nKeep - 1);
    if (mergeIndices.length === 0) {
      warnings.push(`DAAM word '${word}' only occurs past the 77-token limit: no map`);
      continue;
    }
    out.push({ word, mergeIndices });
  }
  return out;
}

/** Saved grounding-module buffers (spectral-norm u0/sv0, BatchNorm running statistics). */
export type GroundingState = Map<string, Float32Array>;

/** Copies the module's buffers to the host, for restoreGroundingState. */
export async function snapshotGroundingState(seg: Segmodule): Promise<GroundingState> {
  const out: GroundingState = new Map();
  for (const [name, p] of namedParams(seg)) if (p.kind === 'buffer') out.set(name, await p.t.toArray());
  return out;
}

/** Puts saved buffers back, so the next 'official'-mode call starts where the snapshot did. */
export async function restoreGroundingState(seg: Segmodule, state: GroundingState): Promise<void> {
  for (const [name, p] of namedParams(seg)) {
    if (p.kind !== 'buffer') continue;
    const v = state.get(name);
    if (!v) throw new InputError(`restoreGroundingState: the snapshot has no buffer ${name}; take it from this module`);
    p.set(Tensor.from(p.t.rt, v, p.shape));
  }
}
