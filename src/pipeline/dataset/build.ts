// `dataset build`: generate, annotate and store samples 0..count-1 (or one shard of them)
// in DIR, resumably.
//
// Per sample (in index order): generate (dataset/generate.ts; or, for an annotator that
// makes its own samples, maker.ts, its makeSample), annotate (a class the
// annotator misses keeps an all-zero mask and gets no loss; when it finds none of the
// classes the sample is skipped and counted), write the files into a temporary folder,
// rename it to samples/<id>, then append the manifest line. A sample is finished exactly
// when its manifest line exists, so an interruption at any point loses at most the sample
// in progress: a rerun removes temporary folders and folders without a line (of the
// indices it builds) and builds what is missing. Samples depend only on (settings, index),
// so resumed, sharded and merged builds equal one uninterrupted build byte for byte.
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import type { StableDiffusion } from '../../models/sd.js';
import { DaamAnnotator } from '../annotate/daam.js';
import { classTokenCount } from '../grounded/text.js';
import { checkAnnotation, type Annotator } from '../annotate/types.js';
import { generateSample, type SampleGeneration } from './generate.js';
import { fileDatasetIo, IMAGE_FILE, SAMPLE_FILE, sampleDir, sampleFiles, SAMPLES_DIR, TEMP_RE, type DatasetIo, type SampleFiles } from './files.js';
import { sampleMakerOf, type MadeSample } from './maker.js';
import { manifestLine, MANIFEST_FILE, readManifest, writeManifest, type ManifestRecord } from './manifest.js';
import { planSample, sampleId, shardIndices, type PlannedSample, type Shard } from './plan.js';
import {
  DATASET_FORMAT, datasetShape, readDatasetSettings, resolveGeneration, settingsDifferences, writeDatasetSettings, type DatasetSettings, type GenerationRequest, type Storage,
} from './settings.js';
import type { DatasetVocabulary } from './vocab.js';

export interface BuildOptions extends GenerationRequest {
  out: string;
  /** 'tiny' or the model's path, as recorded in dataset.json (the caller loaded `sd` from it). */
  model: string;
  vocab: DatasetVocabulary;
  /** Samples 0..count-1 (of this shard). */
  count: number;
  /** Base seed of the sample plan (default 0). */
  seed?: number;
  shard?: Shard;
  /** Default 'regen'. */
  storage?: Storage;
  /** Test hooks: stop (after finishing the current sample) when aborted, or after this
   *  many samples were finished by this call. */
  signal?: AbortSignal;
  stopAfter?: number;
  /** Where files go (default: the file system). */
  io?: DatasetIo;
  onEvent?: (e: BuildEvent) => void;
}

export type BuildEvent =
  | { kind: 'plan'; planned: number; finished: number; todo: number }
  | { kind: 'warning'; message: string }
  | { kind: 'sample'; index: number; id: string; prompt: string; position: number; todo: number }
  | { kind: 'done'; record: ManifestRecord; seconds: number; position: number; todo: number };

export interface BuildSummary {
  settings: DatasetSettings;
  /** Indices this call planned (the shard's share of 0..count-1). */
  planned: number;
  /** Finished before this call (from the manifest). */
  resumed: number;
  /** Finished by this call: stored and skipped. */
  built: number;
  skipped: number;
  /** Bytes written by this call (image + sample files). */
  bytes: number;
  /** True when the call stopped early (signal or stopAfter). */
  stopped: boolean;
  /** Seconds spent generating and writing the samples of this call. */
  seconds: number;
  warnings: string[];
}

let tempCounter = 0;

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r').catch(() => null);
  if (!fh) return;
  try {
    await fh.sync();
  } catch {
    // Some platforms cannot fsync a folder; only durability across power loss is at stake.
  } finally {
    await fh.close();
  }
}

/** The dataset's settings for this build, checked against dataset.json if it exists. */
async function openDataset(sd: StableDiffusion, annotator: Annotator, o: BuildOptions): Promise<{ settings: DatasetSettings; gen: SampleGeneration }> {
  const r = resolveGeneration(sd, o);
  const seed = o.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) throw new InputError(`dataset: --seed ${seed} must be an integer in 0..2^32-1`);
  const storage = o.storage ?? 'regen';
  if (storage !== 'regen' && storage !== 'f16') throw new InputError(`dataset: --storage ${String(storage)} must be regen or f16`);
  const settings: DatasetSettings = {
    format: DATASET_FORMAT,
    model: o.model,
    vocab: { name: o.vocab.name, classes: [...o.vocab.classes], split: o.vocab.split.name, seen: [...o.vocab.split.seen], unseen: [...o.vocab.split.unseen] },
    seed,
    scheduler: 'ddim',
    steps: r.steps,
    guidance_scale: r.guidanceScale,
    negative_prompt: '',
    feature_timestep: r.featureTimestep,
    feature_step_index: r.featureStepIndex,
    size: r.size,
    storage,
    annotator: JSON.parse(JSON.stringify(annotator.identity)) as Record<string, unknown>,
    shape: datasetShape(sd, r.size, r.layout),
  };
  await mkdir(join(o.out, SAMPLES_DIR), { recursive: true });
  const before = await readDatasetSettings(o.out);
  if (before) {
    const diff = settingsDifferences(before as unknown as Record<string, unknown>, settings as unknown as Record<string, unknown>, ['stored', 'now']);
    if (diff.length) throw new InputError(`${o.out} holds a dataset built with other settings (${diff.join('; ')}); build into another --out, or give the settings it was built with`);
  } else {
    await writeDatasetSettings(o.out, settings);
  }
  const gen: SampleGeneration = {
    steps: r.steps, guidanceScale: r.guidanceScale, featureTimestep: r.featureTimestep, featureStepIndex: r.featureStepIndex, size: r.size, negativePrompt: '', layout: r.layout,
  };
  return { settings, gen };
}

/** Removes temporary folders and unrecorded sample folders of the indices in `todo`. */
async function clearUnfinished(out: string, todo: Set<number>): Promise<void> {
  const dir = join(out, SAMPLES_DIR);
  for (const name of await readdir(dir)) {
    const temp = TEMP_RE.exec(name);
    const index = temp ? Number(temp[1]) : /^\d+$/.test(name) ? Number(name) : -1;
    if (index >= 0 && todo.has(index) && (temp || name === sampleId(index))) await rm(join(dir, name), { recursive: true, force: true });
  }
}

type Made =
  | { kind: 'skipped'; record: ManifestRecord }
  | { kind: 'ok'; files: SampleFiles; found: boolean[] };

/** Generates and annotates one sample. */
async function makeSample(sd: StableDiffusion, annotator: Annotator, plan: PlannedSample, s: DatasetSettings, gen: SampleGeneration): Promise<Made> {
  const useDaam = annotator instanceof DaamAnnotator;
  const g = await generateSample(sd, plan, gen, { features: s.storage === 'f16', daam: useDaam });
  if (useDaam) annotator.provide(plan.id, g.daam ?? []);
  const sample = { id: plan.id, image: { width: g.width, height: g.height, rgb: g.rgb, rgba: g.rgba }, classes: plan.classes, prompt: plan.prompt };
  // An empty mask is a miss, like no mask (the official rule keeps only found instances).
  const masks = checkAnnotation(annotator.name, sample, await annotator.annotate(sample)).map((m) => (m && m.includes(1) ? m : null));
  if (masks.every((m) => m === null)) {
    const record: ManifestRecord = {
      index: plan.index, id: plan.id, prompt: plan.prompt, classes: plan.classes, seed: plan.seed,
      status: 'skipped', reason: `the ${annotator.name} annotator found none of ${plan.classes.join(', ')}`,
    };
    return { kind: 'skipped', record };
  }
  return { kind: 'ok', files: sampleFiles(g, plan, masks, s), found: masks.map((m) => m !== null) };
}

function fromMaker(plan: PlannedSample, m: MadeSample): Made {
  if (m.kind === 'ok') return m;
  return { kind: 'skipped', record: { index: plan.index, id: plan.id, prompt: plan.prompt, classes: plan.classes, seed: plan.seed, status: 'skipped', reason: m.reason } };
}

/** Builds (or resumes) the dataset in `o.out` with `sd` and `annotator`. */
export async function buildDataset(sd: StableDiffusion, annotator: Annotator, o: BuildOptions): Promise<BuildSummary> {
  const io = o.io ?? fileDatasetIo;
  const emit = (e: BuildEvent) => o.onEvent?.(e);
  const indices = shardIndices(o.count, o.shard);
  if (o.stopAfter !== undefined && (!Number.isSafeInteger(o.stopAfter) || o.stopAfter < 0)) throw new InputError(`dataset: stopAfter ${o.stopAfter} must be a non-negative integer`);
  // Every class's query must fit the text window (an InputError naming the class).
  for (const c of o.vocab.split.seen) classTokenCount(sd, c);
  const { settings, gen } = await openDataset(sd, annotator, o);
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    emit({ kind: 'warning', message });
  };

  const manifest = await readManifest(o.out);
  for (const p of manifest.problems) warn(`ignored (its sample is rebuilt if this build covers it): ${p}`);
  if (manifest.dirty) await writeManifest(o.out, manifest.records.values());
  const todo = indices.filter((i) => !manifest.records.has(i));
  await clearUnfinished(o.out, new Set(todo));
  emit({ kind: 'plan', planned: indices.length, finished: indices.length - todo.length, todo: todo.length });
  // An annotator that makes its own samples (ddim-inverse: real pictures) plans them too.
  const maker = sampleMakerOf(annotator);
  const finishedOk = [...manifest.records.values()].filter((r) => r.status === 'ok').length;
  const plans = maker ? await maker.planSamples(todo, settings, finishedOk) : todo.map((i) => planSample(settings.vocab.seen, settings.seed, i));
  if (plans.length) await annotator.prepare?.(plans.map((p) => ({ id: p.id, classes: p.classes })));

  const summary: BuildSummary = { settings, planned: indices.length, resumed: indices.length - todo.length, built: 0, skipped: 0, bytes: 0, stopped: false, seconds: 0, warnings };
  const manifestPath = join(o.out, MANIFEST_FILE);
  const samplesRoot = join(o.out, SAMPLES_DIR);
  for (const [position, plan] of plans.entries()) {
    if (o.signal?.aborted || (o.stopAfter !== undefined && summary.built >= o.stopAfter)) {
      summary.stopped = true;
      break;
    }
    emit({ kind: 'sample', index: plan.index, id: plan.id, prompt: plan.prompt, position, todo: plans.length });
    const t0 = performance.now();
    const made: Made = maker ? fromMaker(plan, await maker.makeSample(sd, plan, settings, gen)) : await makeSample(sd, annotator, plan, settings, gen);
    let record: ManifestRecord;
    if (made.kind === 'skipped') {
      record = made.record;
      summary.skipped++;
    } else {
      const tmp = join(samplesRoot, `.${plan.id}.tmp-${process.pid}-${tempCounter++}`);
      try {
        await mkdir(tmp);
        await io.writeSample(tmp, made.files);
        const bytes = { image: (await stat(join(tmp, IMAGE_FILE))).size, sample: (await stat(join(tmp, SAMPLE_FILE))).size };
        record = { index: plan.index, id: plan.id, prompt: plan.prompt, classes: plan.classes, seed: plan.seed, status: 'ok', found: made.found, bytes };
        await rename(tmp, sampleDir(o.out, plan.id));
      } catch (e) {
        await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
        throw e;
      }
      await syncDir(samplesRoot);
      summary.bytes += record.bytes.image + record.bytes.sample;
    }
    // The line comes last: until it is complete the sample counts as unfinished, and a
    // rerun removes its folder and builds it again.
    await io.appendLine(manifestPath, manifestLine(record));
    summary.built++;
    const seconds = (performance.now() - t0) / 1000;
    summary.seconds += seconds;
    emit({ kind: 'done', record, seconds, position, todo: plans.length });
  }
  return summary;
}
