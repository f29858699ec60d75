// The run folder around the checkpoints (see checkpoint.ts):
//   run.json    the settings the run started with (runSettings), compared on --resume
//   log.jsonl   one JSON line per step, appended as the run goes
// A fresh run refuses a folder that already holds a run (its checkpoints, log and
// `latest` would be overwritten or pruned away) unless asked to overwrite it; the old
// run is then deleted `latest` first, so at no point does `latest` name a deleted
// checkpoint. The log is appended to, so an interrupted run can leave a half-written
// last line: reading tolerates exactly that (the line is dropped) and nothing else.
import { appendFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { checkpointStep, isCheckpointTemp, LATEST, listCheckpoints, LOG, readRunFile, RUN_FILE } from './files.js';
import type { StepLog } from './types.js';

export const RUN_FORMAT = 'grounded-sd.train-run/1';

/** The names in `dir` that belong to a training run, sorted; [] when `dir` does not exist. */
export async function runArtefacts(dir: string): Promise<string[]> {
  let isDir: boolean;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new InputError(`cannot use run folder ${dir}: ${(err as Error).message}`);
  }
  if (!isDir) throw new InputError(`--out ${dir} is not a folder; give a folder for the run (it is created when missing)`);
  const names = await readdir(dir);
  return names.filter((n) => n === LATEST || n === LOG || n === RUN_FILE || checkpointStep(n) !== null || isCheckpointTemp(n)).sort();
}

/** Refuses to start a fresh run over an existing one unless `overwrite`. */
export function checkFreshStart(dir: string, artefacts: string[], overwrite: boolean): void {
  if (artefacts.length === 0 || overwrite) return;
  const shown = artefacts.length > 6 ? `${artefacts.slice(0, 6).join(', ')} (+${artefacts.length - 6} more)` : artefacts.join(', ');
  throw new InputError(`--out ${dir} already holds a training run (${shown}); continue it with --resume, `
    + 'choose another --out, or pass --overwrite to delete that run and start over');
}

/** Deletes the old run (if any) and starts a new one: run.json, an empty log. */
export async function startRun(dir: string, artefacts: string[], settings: Record<string, unknown>): Promise<void> {
  // `latest` goes first: if this is interrupted, what remains are unreferenced
  // checkpoints, which --resume reports and a second --overwrite clears.
  if (artefacts.includes(LATEST)) await rm(join(dir, LATEST), { force: true });
  for (const n of artefacts) if (n !== LATEST) await rm(join(dir, n), { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, RUN_FILE), `${JSON.stringify({ format: RUN_FORMAT, settings }, null, 2)}\n`);
  await writeFileAtomic(join(dir, LOG), '');
}

/** The settings run.json records, or null when there is no run.json. */
export async function readRunSettings(dir: string): Promise<Record<string, unknown> | null> {
  const file = join(dir, RUN_FILE);
  const text = await readRunFile(file, 'run settings');
  if (text === null) return null;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new InputError(`${file} is not valid JSON (${(err as Error).message}); delete it to compare against the checkpoint's own copy of the settings, or start over with --overwrite`);
  }
  const d = doc as { format?: unknown; settings?: unknown } | null;
  if (typeof d !== 'object' || d === null || d.format !== RUN_FORMAT || typeof d.settings !== 'object' || d.settings === null || Array.isArray(d.settings)) {
    throw new InputError(`${file} is not a run settings file (expected {"format": "${RUN_FORMAT}", "settings": {...}}); delete it to compare against the checkpoint's own copy, or start over with --overwrite`);
  }
  return d.settings as Record<string, unknown>;
}

/** "lr: 0.001 -> 0.01" for every setting that differs (missing ones show as "unset"). */
export function settingsChanges(stored: Record<string, unknown>, current: Record<string, unknown>): string[] {
  const show = (v: unknown) => (v === undefined ? 'unset' : JSON.stringify(v));
  const keys = [...new Set([...Object.keys(stored), ...Object.keys(current)])].sort();
  return keys.filter((k) => show(stored[k]) !== show(current[k])).map((k) => `${k}: ${show(stored[k])} -> ${show(current[k])}`);
}

/** The log's lines for steps 1..upTo, dropping a half-written last line (an interrupted
 *  append) and the lines of steps past the checkpoint (the resumed run redoes them). */
export async function readLog(dir: string, upTo: number): Promise<string[]> {
  const file = join(dir, LOG);
  const text = await readRunFile(file, 'training log', 1 << 30);
  if (text === null) return [];
  const pieces = text.split('\n');
  // The piece after the last newline is '' for a complete log, else an interrupted append.
  pieces.pop();
  const out: string[] = [];
  pieces.forEach((line, i) => {
    let step: unknown;
    try {
      step = (JSON.parse(line) as Partial<StepLog>).step;
    } catch {
      step = undefined;
    }
    if (typeof step !== 'number' || !Number.isSafeInteger(step)) {
      throw new InputError(`${file} line ${i + 1} is not a step record (${JSON.stringify(line.slice(0, 60))}); only the last line can be cut short by an interruption. `
        + 'Delete that line (the log is a record only, the checkpoint holds the state) and resume again');
    }
    if (step <= upTo) out.push(line);
  });
  return out;
}

/** Replaces the log with `lines` (atomically). */
export async function rewriteLog(dir: string, lines: string[]): Promise<void> {
  await writeFileAtomic(join(dir, LOG), lines.map((l) => `${l}\n`).join(''));
}

/** One line per step; appends are not atomic, which readLog tolerates (see above). */
export async function appendLog(dir: string, entry: StepLog): Promise<void> {
  await appendFile(join(dir, LOG), `${JSON.stringify(entry)}\n`);
}

/** After a resume from step `step`: deletes checkpoints past it (the interrupted run's,
 *  made before `latest` moved on) and temporary folders of interrupted saves. */
export async function dropStaleCheckpoints(dir: string, step: number): Promise<void> {
  for (const c of await listCheckpoints(dir)) if (c.step > step) await rm(join(dir, c.name), { recursive: true, force: true });
  for (const n of await readdir(dir)) if (isCheckpointTemp(n)) await rm(join(dir, n), { recursive: true, force: true });
}
