// The settings that define a dataset, stored in DIR/dataset.json when the first build
// starts and compared on every later build into DIR and on merge: a sample is only ever
// added to a folder whose samples were made the same way. The sample count and the shard
// are not settings (sample i does not depend on them): a rerun with a larger --count
// extends the dataset, and shards of one dataset merge.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { GROUPS, type Group } from '../../models/grounding/config.js';
import { createScheduler } from '../../models/schedulers/index.js';
import type { StableDiffusion } from '../../models/sd.js';
import { expectedModuleShape, featureLayout, type FeatureTap } from '../grounded/features.js';
import { checkGenerationSize, deviceLimits, generationModel } from '../size_check.js';
import type { DatasetVocabulary } from './vocab.js';

export const DATASET_FORMAT = 'grounded-sd dataset 1';
export const DATASET_FILE = 'dataset.json';
export const STORAGES = ['regen', 'f16'] as const;
/** regen: what regenerates the features with one UNet call; f16: the grouped features. */
export type Storage = (typeof STORAGES)[number];

/** Patch size of the grounding module's decoder (official and tiny widths): the finest
 *  feature side must be a multiple of it. */
const PATCH = 4;

/** Shapes every sample of the dataset has (what a module trained on it must take). */
export interface DatasetShape {
  /** The UNet's input latent at the feature step, [C, h, w]. */
  latent: [number, number, number];
  /** Text encoder window (token ids per prompt) and width (class embedding size). */
  text_length: number;
  context_dim: number;
  /** Mask side (= image side). */
  out_size: number;
  /** CFG-doubled channels of each group's taps, in module order, and each group's side. */
  feature_channels: Record<Group, number[]>;
  feature_res: Record<Group, number>;
}

export interface DatasetSettings {
  format: string;
  /** 'tiny' (the built-in random model) or the model's absolute path. */
  model: string;
  vocab: { name: string; classes: string[]; split: string; seen: string[]; unseen: string[] };
  seed: number;
  scheduler: 'ddim';
  steps: number;
  guidance_scale: number;
  negative_prompt: string;
  /** DDPM timestep of the UNet call whose block outputs are the features, and its index
   *  in the sampling schedule. */
  feature_timestep: number;
  feature_step_index: number;
  size: number;
  storage: Storage;
  annotator: Record<string, unknown>;
  shape: DatasetShape;
}

/** What a build asks for (defaults: the official construction). */
export interface GenerationRequest {
  steps?: number;
  guidanceScale?: number;
  /** DDPM timestep of the feature call (default: the schedule's last, 1). */
  featureTimestep?: number;
  /** Square image side (default: the model's, 512 for SD 1.x, 64 for the tiny model). */
  size?: number;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** The DDIM schedule of `steps` steps for `sd`. */
export function ddimTimesteps(sd: StableDiffusion, steps: number): number[] {
  const s = createScheduler('ddim', sd.schedulerConfig);
  s.setTimesteps(steps);
  return [...s.timesteps];
}

/** Checks a request against the model and fills in the defaults. */
export function resolveGeneration(sd: StableDiffusion, r: GenerationRequest): { steps: number; guidanceScale: number; featureTimestep: number; featureStepIndex: number; size: number; layout: FeatureTap[] } {
  const steps = r.steps ?? 50;
  const guidanceScale = r.guidanceScale ?? 5;
  const f = sd.vae.scaleFactor;
  const size = r.size ?? (sd.unet.config.sample_size ?? 64) * f;
  if (!isInt(steps) || steps < 1 || steps > 1000) throw new InputError(`dataset: --steps ${steps} must be an integer in 1..1000`);
  if (!Number.isFinite(guidanceScale) || guidanceScale < 0) throw new InputError(`dataset: --guidance ${guidanceScale} must be a finite number >= 0 (the official construction uses 5.0)`);
  if (!isInt(size) || size < f || size % f !== 0) throw new InputError(`dataset: --size ${size} must be a positive multiple of ${f} (the VAE's factor)`);
  const latent = size / f;
  if (latent % PATCH !== 0) throw new InputError(`dataset: --size ${size} gives ${latent}x${latent} latents; the grounding module cuts the finest features into ${PATCH}x${PATCH} patches, so use a size that is a multiple of ${PATCH * f}`);
  checkGenerationSize(generationModel({ unet: sd.unet, vae: sd.vae, textEncoder: sd.textEncoder }), { height: size, width: size, batchSize: 1 }, deviceLimits(sd.rt));
  const timesteps = ddimTimesteps(sd, steps);
  const featureTimestep = r.featureTimestep ?? timesteps[timesteps.length - 1];
  const featureStepIndex = timesteps.indexOf(featureTimestep);
  if (featureStepIndex < 0) {
    const near = [...timesteps].sort((a, b) => Math.abs(a - featureTimestep) - Math.abs(b - featureTimestep)).slice(0, 2);
    let fits = '';
    for (let n = steps + 1; n <= 1000 && !fits; n++) if (ddimTimesteps(sd, n).includes(featureTimestep)) fits = `, or use --steps ${n} (its schedule includes ${featureTimestep})`;
    throw new InputError(`dataset: --feature-step ${featureTimestep} is not a timestep of the ${steps}-step DDIM schedule; features come from a UNet call the sampler makes: pick ${near.join(' or ')}${fits}`);
  }
  return { steps, guidanceScale, featureTimestep, featureStepIndex, size, layout: featureLayout(sd.unet, latent, latent) };
}

/** The sample shapes of `sd` at `size` px. */
export function datasetShape(sd: StableDiffusion, size: number, layout: FeatureTap[]): DatasetShape {
  const { feature_channels, feature_res } = expectedModuleShape(layout);
  const latent = size / sd.vae.scaleFactor;
  return {
    latent: [sd.unet.resolved.inChannels, latent, latent],
    text_length: sd.textEncoder.config.max_position_embeddings,
    context_dim: sd.textEncoder.config.hidden_size,
    out_size: size,
    feature_channels,
    feature_res: Object.fromEntries(GROUPS.map((g) => [g, feature_res[g][0]])) as Record<Group, number>,
  };
}

/** Keys whose values differ (dotted paths, one level of nesting), each as
 *  "key: <la> X, <lb> Y", for refusal messages. */
export function settingsDifferences(a: Record<string, unknown>, b: Record<string, unknown>, [la, lb]: [string, string], prefix = ''): string[] {
  const out: string[] = [];
  const nested = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const short = (v: unknown) => {
    const s = JSON.stringify(v) ?? 'nothing';
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
  };
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const [x, y] = [a[k], b[k]];
    if (nested(x) && nested(y) && !prefix) out.push(...settingsDifferences(x, y, [la, lb], `${k}.`));
    else if (JSON.stringify(x) !== JSON.stringify(y)) out.push(`${prefix}${k}: ${la} ${short(x)}, ${lb} ${short(y)}`);
  }
  return out;
}

/** Reads and checks DIR/dataset.json; null when the folder has none. */
export async function readDatasetSettings(dir: string): Promise<DatasetSettings | null> {
  const path = join(dir, DATASET_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT') return null;
    if (code === 'ENOTDIR') throw new InputError(`${dir} is not a folder; give a dataset folder (made by grounded-sd dataset build)`);
    throw new InputError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${path} is not valid JSON (${(e as Error).message}); the dataset's settings file is damaged: restore it from another shard of the same build, or rebuild`);
  }
  const d = doc as Partial<DatasetSettings>;
  const bad = (what: string): never => {
    throw new InputError(`${path}: ${what}; the dataset's settings file is damaged or from another program (rebuild the dataset)`);
  };
  if (typeof d !== 'object' || d === null || d.format !== DATASET_FORMAT) bad(`format is ${JSON.stringify(d?.format)}, expected '${DATASET_FORMAT}'`);
  if (!STORAGES.includes(d.storage as Storage)) bad(`storage ${JSON.stringify(d.storage)} must be one of ${STORAGES.join(', ')}`);
  for (const k of ['seed', 'steps', 'feature_timestep', 'feature_step_index', 'size'] as const) if (!isInt(d[k]) || (d[k] as number) < 0) bad(`${k} ${JSON.stringify(d[k])} must be a non-negative integer`);
  if (typeof d.guidance_scale !== 'number' || typeof d.negative_prompt !== 'string' || typeof d.model !== 'string') bad('guidance_scale, negative_prompt and model must be a number and strings');
  const v = d.vocab;
  const names = (x: unknown) => Array.isArray(x) && x.every((c) => typeof c === 'string');
  if (!v || !names(v.classes) || !names(v.seen) || !names(v.unseen)) bad('vocab must hold the class, seen and unseen name lists');
  const s = d.shape;
  const dims = (x: unknown, n: number) => Array.isArray(x) && x.length === n && x.every((y) => isInt(y) && y > 0);
  if (!s || !dims(s.latent, 3) || !isInt(s.text_length) || !isInt(s.context_dim) || !isInt(s.out_size)) bad('shape must give latent [C, h, w], text_length, context_dim and out_size');
  for (const g of GROUPS) {
    const ch = s?.feature_channels?.[g];
    if (!Array.isArray(ch) || ch.length === 0 || !ch.every((c) => isInt(c) && c > 0) || !isInt(s?.feature_res?.[g])) bad(`shape.feature_channels.${g} / feature_res.${g} are missing or not positive integers`);
  }
  return d as DatasetSettings;
}

/** Writes DIR/dataset.json atomically. */
export async function writeDatasetSettings(dir: string, s: DatasetSettings): Promise<void> {
  await writeFileAtomic(join(dir, DATASET_FILE), `${JSON.stringify(s, null, 2)}\n`);
}
