// What the VOC and COCO exports share: the output folder (new, empty, or an earlier export
// of the same kind, which is replaced: sample files it holds that this export does not
// write are removed), the deterministic train/val split, and export.json (written first
// as 'complete: false', and again with everything when the export is done).
import { mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { streamKey, uniform24 } from '../../tensor/hash.js';
import { nameHash } from '../eval/testsets.js';
import type { SynthDataset } from './read.js';

export const EXPORT_FORMAT = 'grounded-sd export 1';
export const EXPORT_FILE = 'export.json';
export type ExportKind = 'voc' | 'coco';

/** Key of the split's hash stream (any constant; fixed so a sample's split never changes). */
const VAL_KEY = nameHash('grounded-sd synth val');

/** Whether sample `id` is in the validation split: uniform24(streamKey(VAL_KEY,
 *  nameHash(id)), 0) < fraction. A function of the id alone, so a sample keeps its split
 *  whichever other samples (shards, a --partial export) are exported with it; the val
 *  share is `fraction` in expectation, not exactly. */
export function isVal(id: string, fraction: number): boolean {
  return uniform24(streamKey(VAL_KEY, nameHash(id)), 0) < fraction;
}

export interface ExportOptions {
  /** Share of samples in the validation split, in [0, 1). */
  valFraction: number;
  /** Called after each sample with the count done. */
  onProgress?: (done: number, total: number) => void;
}

export interface ExportSummary {
  out: string;
  train: number;
  val: number;
  /** Files written, relative to `out`. */
  files: string[];
  notes: string[];
}

/** Makes `out` ready for an export of `kind`: refuses a folder holding anything but an
 *  earlier (finished or interrupted) export of that kind, then marks it as an export in
 *  progress, so an interrupted export can be rerun into the same folder. */
export async function prepareExportFolder(out: string, kind: ExportKind): Promise<void> {
  let entries: string[] = [];
  try {
    const st = await stat(out);
    if (!st.isDirectory()) throw new InputError(`export: ${out} exists and is not a folder; choose a new or empty OUT folder`);
    entries = await readdir(out);
  } catch (e) {
    if (e instanceof InputError) throw e;
    if ((e as { code?: string }).code !== 'ENOENT') throw new InputError(`export: cannot use ${out}: ${(e as Error).message}`);
  }
  if (entries.length > 0) {
    let doc: { format?: unknown; kind?: unknown } | undefined;
    try {
      doc = JSON.parse(await readFile(join(out, EXPORT_FILE), 'utf8')) as typeof doc;
    } catch {
      doc = undefined;
    }
    if (!doc || doc.format !== EXPORT_FORMAT) {
      throw new InputError(`export: ${out} is not empty and holds no earlier export (no valid ${EXPORT_FILE}); choose a new or empty OUT folder so nothing of yours is overwritten`);
    }
    if (doc.kind !== kind) throw new InputError(`export: ${out} holds a ${String(doc.kind)} export; export ${kind} to another folder`);
  }
  await mkdir(out, { recursive: true });
  await writeFileAtomic(join(out, EXPORT_FILE), `${JSON.stringify({ format: EXPORT_FORMAT, kind, complete: false }, null, 2)}\n`);
}

/** Sample files (the names this export writes) in `folders` of `out` that are not in
 *  `written` (paths relative to `out`): left by an earlier export of other samples. */
export async function removeStale(out: string, folders: readonly string[], written: readonly string[]): Promise<void> {
  const now = new Set(written);
  for (const folder of folders) {
    let names: string[];
    try {
      names = await readdir(join(out, folder));
    } catch {
      continue;
    }
    for (const name of names) {
      const rel = `${folder}/${name}`;
      if (!SAMPLE_FILE.test(name) || now.has(rel)) continue;
      await unlink(join(out, rel)).catch((e: { code?: string }) => {
        if (e.code !== 'ENOENT') throw e;
      });
    }
  }
}

/** Names of exported sample files: plan ids (plan.ts) with an image or label extension. */
const SAMPLE_FILE = /^[cp][0-9]+(-[0-9]+)+\.(png|jpg)$/;

/** Writes export.json (last: its presence marks a complete export). */
export async function writeExportRecord(out: string, kind: ExportKind, ds: SynthDataset, sources: readonly string[], extra: Record<string, unknown>): Promise<void> {
  const doc = {
    format: EXPORT_FORMAT,
    kind,
    sources: [...sources],
    vocab: ds.settings.vocab,
    split: ds.settings.split,
    labels: ds.settings.labels,
    masks: ds.settings.masks,
    generation: ds.settings.generation,
    plan: { ...ds.settings.plan, exported: ds.entries.length },
    notes: ds.notes,
    ...extra,
    complete: true,
  };
  await writeFileAtomic(join(out, EXPORT_FILE), `${JSON.stringify(doc, null, 2)}\n`);
}

/** Creates the folders of `paths` (relative to `out`). */
export async function makeFolders(out: string, folders: readonly string[]): Promise<void> {
  for (const f of folders) await mkdir(join(out, f), { recursive: true });
}
