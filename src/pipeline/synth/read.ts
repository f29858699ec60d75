// Reading synthetic datasets back for export: one folder, or the folders of a sharded run
// (one per shard, as `synth --shard i/n` writes them), joined into one list of finished
// samples in the plan's order, so the export of n shards equals that of one unsharded run.
//
// Checked: every folder is a synth folder of the same dataset (synth.json equal but for
// the shard); shards are all of one count and none is given twice; the manifests' samples
// belong to the plan. What is missing (a shard not given, samples a shard has not
// finished) is an InputError naming it, unless `partial` is set, in which case it is
// reported in `notes` and the finished samples are exported.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { decodePng } from '../../io/png.js';
import { decodePaletteIndices, vocPalette } from '../../io/png_palette.js';
import { IGNORE } from './labels.js';
import { readManifest, type SynthRecord } from './manifest.js';
import { planOf, readSettings, settingsDifferences, shardPlanOf, type SynthSettings } from './settings.js';

export interface SynthEntry {
  /** The folder holding the sample. */
  dir: string;
  record: SynthRecord;
}

export interface SynthDataset {
  /** The shared settings, shard set to null. */
  settings: SynthSettings;
  /** Finished samples in plan order. */
  entries: SynthEntry[];
  /** Planned samples of the whole dataset. */
  planned: number;
  /** What is missing or was ignored (with `partial`, or ignored manifest lines). */
  notes: string[];
}

const list = (xs: readonly (string | number)[], max = 8) => (xs.length > max ? `${xs.slice(0, max).join(', ')} and ${xs.length - max} more` : xs.join(', '));

/** Opens the synth folders `dirs` as one dataset. */
export async function openSynthDataset(dirs: readonly string[], partial = false): Promise<SynthDataset> {
  if (dirs.length === 0) throw new InputError('export: give at least one synth folder');
  const parts: Array<{ dir: string; settings: SynthSettings }> = [];
  for (const dir of dirs) {
    const settings = await readSettings(dir);
    if (!settings) throw new InputError(`${dir} is not a synth folder (it has no synth.json); give the --out folder of grounded-sd synth`);
    parts.push({ dir, settings });
  }
  const first = parts[0];
  for (const p of parts.slice(1)) {
    const diff = settingsDifferences(first.settings, p.settings, ['shard']);
    if (diff.length) throw new InputError(`${p.dir} and ${first.dir} are not shards of one dataset: ${diff.join('; ')}`);
  }
  const notes: string[] = [];
  const missing: string[] = [];
  const sharded = parts.filter((p) => p.settings.shard !== null);
  if (sharded.length > 0 && sharded.length < parts.length) {
    throw new InputError(`${parts.find((p) => p.settings.shard === null)?.dir} holds the whole dataset and ${sharded[0].dir} one shard of it; give either the unsharded folder or the shard folders`);
  }
  if (sharded.length === 0 && parts.length > 1) throw new InputError(`${parts[0].dir} and ${parts[1].dir} both hold the whole (unsharded) dataset; give one of them`);
  if (sharded.length > 0) {
    const count = sharded[0].settings.shard?.count as number;
    const byIndex = new Map<number, string>();
    for (const p of sharded) {
      const s = p.settings.shard as { index: number; count: number };
      if (s.count !== count) throw new InputError(`${p.dir} is shard ${s.index}/${s.count} but ${sharded[0].dir} is of ${count} shards; give the shards of one run`);
      const other = byIndex.get(s.index);
      if (other) throw new InputError(`${other} and ${p.dir} are both shard ${s.index}/${count}; give each shard once`);
      byIndex.set(s.index, p.dir);
    }
    const absent = [...Array(count).keys()].filter((i) => !byIndex.has(i));
    if (absent.length) missing.push(`shard(s) ${list(absent.map((i) => `${i}/${count}`))} not given`);
  }

  const finished = new Map<string, SynthEntry>();
  for (const p of parts) {
    const read = await readManifest(p.dir);
    notes.push(...read.problems);
    const mine = new Map(shardPlanOf(p.settings).map((s) => [s.id, s]));
    for (const r of read.records.values()) {
      const s = mine.get(r.id);
      if (!s || s.prompt !== r.prompt || s.seed !== r.seed || JSON.stringify(s.labels) !== JSON.stringify(r.labels)) {
        notes.push(`${p.dir}: manifest sample ${r.id} is not in this shard's plan; ignored`);
        continue;
      }
      finished.set(r.id, { dir: p.dir, record: r });
    }
    const unfinished = [...mine.keys()].filter((id) => !finished.has(id));
    if (unfinished.length) {
      missing.push(`${p.dir}: ${unfinished.length} of ${mine.size} samples not finished (${list(unfinished, 4)}); rerun synth on it with the same options to finish them`);
    }
  }
  if (missing.length && !partial) throw new InputError(`export: the dataset is incomplete: ${missing.join('; ')}. Pass --partial to export the finished samples only`);
  notes.push(...missing);
  const plan = planOf(first.settings);
  const entries = plan.filter((s) => finished.has(s.id)).map((s) => finished.get(s.id) as SynthEntry);
  if (entries.length === 0) throw new InputError(`export: no finished sample in ${list([...dirs], 4)}`);
  return { settings: { ...first.settings, shard: null }, entries, planned: plan.length, notes };
}

export interface LoadedSample {
  /** PNG bytes of the image, as stored. */
  imagePng: Buffer;
  rgba: Uint8Array;
  /** Palette PNG bytes of the label map, as stored, and its indices. */
  labelPng: Buffer;
  labels: Uint8Array;
}

/** Reads one sample's image and label map and checks them against its record: sizes, label
 *  values (0, 255 or the sample's class labels) and pixel counts per label. */
export async function loadSample(e: SynthEntry): Promise<LoadedSample> {
  const r = e.record;
  const imagePath = join(e.dir, r.image);
  const labelPath = join(e.dir, r.label);
  const fix = `delete its line from ${join(e.dir, 'manifest.jsonl')}, then rerun synth there with the same options to make it again, or export with --partial to leave it out`;
  const [imagePng, labelPng] = await Promise.all([readFile(imagePath), readFile(labelPath)]).catch((err: Error) => {
    throw new InputError(`sample ${r.id}: cannot read its files (${err.message}); ${fix}`);
  });
  let img: ReturnType<typeof decodePng>;
  try {
    img = decodePng(imagePng);
  } catch (err) {
    throw new InputError(`${imagePath} is not a readable PNG (${(err as Error).message}); ${fix}`);
  }
  if (img.width !== r.width || img.height !== r.height) throw new InputError(`${imagePath} is ${img.width}x${img.height}, its manifest line says ${r.width}x${r.height}; ${fix}`);
  const lab = decodePaletteIndices(labelPng, vocPalette(), labelPath);
  if (lab.width !== r.width || lab.height !== r.height) throw new InputError(`${labelPath} is ${lab.width}x${lab.height}, its manifest line says ${r.width}x${r.height}; ${fix}`);
  const allowed = new Set([0, IGNORE, ...r.labels]);
  const counts = new Map<number, number>();
  for (const v of lab.indices) counts.set(v, (counts.get(v) ?? 0) + 1);
  for (const [v, c] of counts) {
    if (!allowed.has(v)) throw new InputError(`${labelPath} has ${c} pixels of label ${v}, which is none of the sample's labels (${[...allowed].join(', ')}); ${fix}`);
  }
  for (const [v, c] of counts) {
    if (r.pixels[String(v)] !== c) throw new InputError(`${labelPath} has ${c} pixels of label ${v}, its manifest line says ${r.pixels[String(v)] ?? 0}; ${fix}`);
  }
  return { imagePng, rgba: img.rgba, labelPng, labels: lab.indices };
}
