// `grounded-sd synth` end to end: plan the dataset (plan.ts), keep this shard's samples,
// skip the finished ones (manifest.ts), and per remaining sample generate the image and
// the grounding module's mask logits of its classes, turn them into a label map
// (labels.ts) and store it.
//
// Output folder:
//   synth.json           settings (settings.ts); a rerun with other values is refused
//   images/<id>.png      the generated image (RGB, lossless)
//   labels/<id>.png      its label map as a palette PNG with the PASCAL VOC colours: pixel
//                        value = label (0 background, vocabulary position + 1, 255 ignore)
//   manifest.jsonl       one line per finished sample, appended after both files were
//                        written atomically (a sample is finished exactly when its line
//                        is there)
// Every sample starts from the same grounding-module state (engine.ts), so a sample is the
// same whichever process, shard or rerun makes it.
import { access, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { encodePng } from '../../io/png.js';
import { encodePalettePng, vocPalette } from '../../io/png_palette.js';
import type { GroundedProgress } from '../grounded.js';
import { ignoreBand, labelCounts, labelMap } from './labels.js';
import { appendRecord, readManifest, writeManifest, type SynthRecord } from './manifest.js';
import { allPairs, planSynth, shardOf, type Shard, type SynthSample } from './plan.js';
import { LABEL_RULE, OVERLAP_RULE, planOf, readSettings, SETTINGS_FILE, settingsDifferences, SYNTH_FORMAT, type SynthSettings } from './settings.js';
import type { SynthVocabulary } from './vocab.js';

/** One generated image with the mask logits of its classes. */
export interface SynthImage {
  width: number;
  height: number;
  /** RGBA bytes [height, width, 4]. */
  rgba: Uint8Array;
  /** Per class of the sample, in its prompt order: mask logits, row-major [height * width]. */
  logits: Float32Array[];
  warnings: string[];
}

export type SynthGenerator = (sample: SynthSample, onStage: (p: GroundedProgress) => void) => Promise<SynthImage>;

export interface SynthRunOptions {
  out: string;
  vocab: SynthVocabulary;
  /** Images per class and per pair. */
  perClass: number;
  perPair: number;
  /** Pairs as vocabulary positions, or 'all' (every unordered pair). */
  pairs: 'all' | Array<[number, number]>;
  seed: number;
  shard?: Shard;
  /** Mask threshold on sigmoid(logit) (official 0.5). */
  threshold: number;
  /** Width of the 255 band along label boundaries (0: none). */
  ignoreRadius: number;
  /** What the images and logits depend on (models, steps, guidance, size, ...). */
  generation: Record<string, unknown>;
  onProgress?: (e: SynthEvent) => void;
  /** When aborted, the run stops after the sample in progress (SIGINT/SIGTERM in the CLI). */
  signal?: AbortSignal;
}

export type SynthEvent =
  | { kind: 'plan'; total: number; shard: number; finished: number }
  | { kind: 'problem'; message: string }
  | { kind: 'generating'; id: string; position: number; total: number; prompt: string }
  | { kind: 'stage'; id: string; stage: GroundedProgress['stage']; step: number; total: number }
  | { kind: 'finished'; id: string; position: number; total: number; record: SynthRecord };

export interface SynthSummary {
  settings: SynthSettings;
  generated: string[];
  resumed: string[];
  problems: string[];
  /** True when `signal` stopped the run before every sample was made. */
  stopped: boolean;
}

/** The settings document of a run. */
export function synthSettings(o: SynthRunOptions): SynthSettings {
  const classes = [...o.vocab.classes];
  const pairs = o.pairs === 'all' ? allPairs(classes.length) : o.pairs;
  const total = planSynth({ classes, perClass: o.perClass, perPair: o.perPair, pairs, seed: o.seed }).length;
  return {
    format: SYNTH_FORMAT,
    vocab: { name: o.vocab.name, classes },
    split: o.vocab.split ? { name: o.vocab.split.name, seen: [...o.vocab.split.seen], unseen: [...o.vocab.split.unseen] } : null,
    labels: { ...LABEL_RULE },
    plan: {
      per_class: o.perClass, per_pair: o.perPair, pairs: o.pairs === 'all' ? 'all' : o.pairs.map(([a, b]) => [classes[a], classes[b]] as [string, string]),
      seed: o.seed, samples: total,
    },
    shard: o.shard ? { index: o.shard.index, count: o.shard.count } : null,
    masks: { threshold: o.threshold, overlap: OVERLAP_RULE, ignore_radius: o.ignoreRadius },
    generation: o.generation,
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether a manifest record is the planned sample (same prompt, seed, classes, labels). */
function matchesPlan(r: SynthRecord, s: SynthSample): boolean {
  return r.kind === s.kind && r.prompt === s.prompt && r.seed === s.seed && r.repeat === s.repeat &&
    JSON.stringify(r.classes) === JSON.stringify(s.classes) && JSON.stringify(r.labels) === JSON.stringify(s.labels);
}

/** Runs (or resumes) a synthetic dataset in `o.out`. `generator` is called once, only when
 *  a sample is left to make, so a finished run loads no model. */
export async function runSynth(generator: () => Promise<SynthGenerator>, o: SynthRunOptions): Promise<SynthSummary> {
  const emit = (e: SynthEvent) => o.onProgress?.(e);
  const settings = synthSettings(o);
  await mkdir(join(o.out, 'images'), { recursive: true });
  await mkdir(join(o.out, 'labels'), { recursive: true });
  const before = await readSettings(o.out);
  if (before) {
    const diff = settingsDifferences(before, JSON.parse(JSON.stringify(settings)) as SynthSettings);
    if (diff.length) {
      throw new InputError(`${o.out} holds a synthetic dataset made with other settings (${diff.join('; ')}); use another --out folder, or repeat the options it was made with`);
    }
  } else {
    await writeFileAtomic(join(o.out, SETTINGS_FILE), `${JSON.stringify(settings, null, 2)}\n`);
  }

  const plan = planOf(settings);
  const mine = shardOf(plan, o.shard);
  const planned = new Map(mine.map((s) => [s.id, s]));
  const read = await readManifest(o.out);
  const problems = [...read.problems];
  // Keep records of this shard's plan whose files are there; anything else is made again.
  const kept = new Map<string, SynthRecord>();
  for (const r of read.records.values()) {
    const s = planned.get(r.id);
    if (!s || !matchesPlan(r, s)) {
      problems.push(`manifest line for ${r.id} does not match this dataset's plan; the sample is made again`);
      continue;
    }
    const absent: string[] = [];
    for (const f of [r.image, r.label]) if (!(await exists(join(o.out, f)))) absent.push(f);
    if (absent.length) {
      problems.push(`${r.id}: ${absent.join(' and ')} missing; the sample is made again`);
      continue;
    }
    kept.set(r.id, r);
  }
  for (const p of problems) emit({ kind: 'problem', message: p });
  if (read.dirty || kept.size !== read.records.size) await writeManifest(o.out, mine.filter((s) => kept.has(s.id)).map((s) => kept.get(s.id) as SynthRecord));

  const todo = mine.filter((s) => !kept.has(s.id));
  emit({ kind: 'plan', total: plan.length, shard: mine.length, finished: kept.size });
  const generated: string[] = [];
  const resumed = mine.filter((s) => kept.has(s.id)).map((s) => s.id);
  if (todo.length === 0) return { settings, generated, resumed, problems, stopped: false };
  await removeTempFiles(o.out);

  const generate = await generator();
  const palette = vocPalette();
  for (const [position, s] of todo.entries()) {
    if (o.signal?.aborted) return { settings, generated, resumed, problems, stopped: true };
    emit({ kind: 'generating', id: s.id, position, total: todo.length, prompt: s.prompt });
    const img = await generate(s, (p) => emit({ kind: 'stage', id: s.id, ...p }));
    const pixels = img.width * img.height;
    if (img.logits.length !== s.classes.length || img.rgba.length !== 4 * pixels) {
      throw new InputError(`synth: sample ${s.id}: the generator gave ${img.logits.length} logit maps and ${img.rgba.length / 4} pixels for ${s.classes.length} classes of a ${img.width}x${img.height} image`);
    }
    const map = ignoreBand(labelMap(img.logits, s.labels, pixels, o.threshold), img.height, img.width, o.ignoreRadius);
    const record: SynthRecord = {
      id: s.id, kind: s.kind, classes: s.classes, labels: s.labels, repeat: s.repeat, prompt: s.prompt, seed: s.seed,
      width: img.width, height: img.height, image: `images/${s.id}.png`, label: `labels/${s.id}.png`, pixels: labelCounts(map), warnings: img.warnings,
    };
    await writeFileAtomic(join(o.out, record.image), encodePng(img.rgba, img.width, img.height));
    await writeFileAtomic(join(o.out, record.label), encodePalettePng(map, img.width, img.height, palette));
    await appendRecord(o.out, record);
    generated.push(s.id);
    emit({ kind: 'finished', id: s.id, position, total: todo.length, record });
  }
  return { settings, generated, resumed, problems, stopped: false };
}

/** Removes the temp files of atomic writes a killed run left in images/ and labels/
 *  (io/atomic.ts names them '.<name>.<pid>.<random>.tmp'). */
async function removeTempFiles(out: string): Promise<void> {
  for (const sub of ['images', 'labels']) {
    for (const name of await readdir(join(out, sub))) {
      if (/^\..+\.tmp$/.test(name)) await rm(join(out, sub, name), { force: true });
    }
  }
}
