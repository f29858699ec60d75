// Names and small-file reads of a run folder, shared by the checkpoint and run-folder
// code. Every file is stat'ed before it is opened: opening a FIFO or a device for
// reading can block forever, and a run folder is user-supplied.
import { readdir, readFile, stat } from 'node:fs/promises';
import { formatBytes, InputError } from '../../gpu/errors.js';

export const LATEST = 'latest';
export const LOG = 'log.jsonl';
export const RUN_FILE = 'run.json';
export const STATE = 'state.json';
export const WEIGHTS = 'weights.safetensors';
export const OPTIMIZER = 'optimizer.safetensors';

const CKPT_RE = /^ckpt-(\d{1,15})$/;
const TMP_RE = /^ckpt-\d+\.tmp-\d+$/;

/** ckpt-<step>, zero-padded to 8 digits so listings read in order; code never relies
 *  on that order (steps past 99,999,999 have more digits): it sorts by the number. */
export function checkpointName(step: number): string {
  return `ckpt-${String(step).padStart(8, '0')}`;
}

/** The step a checkpoint folder name stands for, or null if it is not one. */
export function checkpointStep(name: string): number | null {
  const m = CKPT_RE.exec(name);
  return m ? Number(m[1]) : null;
}

export function isCheckpointTemp(name: string): boolean {
  return TMP_RE.test(name);
}

export interface CheckpointEntry { name: string; step: number }

/** Checkpoint folders in `dir`, by step (numerically), oldest first. */
export async function listCheckpoints(dir: string): Promise<CheckpointEntry[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new InputError(`cannot list run folder ${dir}: ${(err as Error).message}`);
  }
  const out: CheckpointEntry[] = [];
  for (const e of entries) {
    const step = checkpointStep(e.name);
    if (step !== null && e.isDirectory()) out.push({ name: e.name, step });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** Throws InputError unless `path` is a regular file; false if it does not exist. */
export async function isRegularFile(path: string, what: string): Promise<boolean> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new InputError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
  if (!st.isFile()) throw new InputError(`${what} ${path} is not a regular file (a folder, FIFO or device); remove it or point elsewhere`);
  return true;
}

/** The text of a small run file, or null when it does not exist. */
export async function readRunFile(path: string, what: string, maxBytes = 1 << 20): Promise<string | null> {
  if (!(await isRegularFile(path, what))) return null;
  const { size } = await stat(path);
  if (size > maxBytes) throw new InputError(`${what} ${path} is ${formatBytes(size)}, more than the ${formatBytes(maxBytes)} such a file can hold; it is not a file this program wrote`);
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

/** "ckpt-2, ckpt-3" of the folder's checkpoints other than `except`, for messages. */
export async function otherCheckpoints(dir: string, except?: string): Promise<string> {
  const names = (await listCheckpoints(dir)).map((c) => c.name).filter((n) => n !== except);
  return names.length ? names.join(', ') : 'none';
}
