// DIR/manifest.jsonl: one JSON line per finished sample ('ok': its folder samples/<id>/
// is complete) or skipped sample ('skipped': the annotator found none of its classes), each
// appended only after the sample's folder was renamed into place. A sample is finished
// exactly when its line is here; a folder without a line is an interrupted write and is
// rebuilt.
//
// An interruption can cut the last line short (appends are not atomic): a last line that
// does not parse is dropped (its sample is rebuilt). Any other line that is not a valid
// record, or repeats an index, is reported and ignored, never trusted: the build rebuilds
// such samples, training skips them.
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { sampleId } from './plan.js';

export const MANIFEST_FILE = 'manifest.jsonl';

interface RecordBase {
  index: number;
  id: string;
  prompt: string;
  classes: string[];
  seed: number;
}

export interface OkRecord extends RecordBase {
  status: 'ok';
  /** Per class: did the annotator find it (a class it missed gets no loss). */
  found: boolean[];
  /** Bytes of the sample's files. */
  bytes: { image: number; sample: number };
}

export interface SkippedRecord extends RecordBase {
  status: 'skipped';
  reason: string;
}

export type ManifestRecord = OkRecord | SkippedRecord;

export interface ManifestRead {
  /** Valid records by index, in file order. */
  records: Map<number, ManifestRecord>;
  /** Lines that were ignored, with the reason ("line 7: ..."). */
  problems: string[];
  /** True when the file needs rewriting before appending (a cut last line, bad lines). */
  dirty: boolean;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isNames = (v: unknown): v is string[] => Array.isArray(v) && v.length > 0 && v.every((c) => typeof c === 'string' && c !== '');

/** Why `doc` is not a manifest record, or null. */
function recordProblem(doc: unknown): string | null {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'not a JSON object';
  const r = doc as Partial<Omit<OkRecord, 'status'> & Omit<SkippedRecord, 'status'>> & { status?: unknown };
  if (!isInt(r.index)) return `index ${JSON.stringify(r.index)} is not a non-negative integer`;
  if (r.id !== sampleId(r.index)) return `id ${JSON.stringify(r.id)} does not match index ${r.index} (expected '${sampleId(r.index)}')`;
  if (typeof r.prompt !== 'string' || !isNames(r.classes) || !isInt(r.seed)) return 'prompt, classes or seed missing or of the wrong type';
  if (r.status === 'skipped') return typeof r.reason === 'string' ? null : 'a skipped record needs a reason';
  if (r.status !== 'ok') return `status ${JSON.stringify(r.status)} is neither 'ok' nor 'skipped'`;
  if (!Array.isArray(r.found) || r.found.length !== r.classes.length || !r.found.every((f) => typeof f === 'boolean')) return 'found must hold one true/false per class';
  if (!r.found.some((f) => f)) return 'an ok record must have at least one class found';
  if (!r.bytes || !isInt(r.bytes.image) || !isInt(r.bytes.sample)) return 'bytes.image and bytes.sample must be byte counts';
  return null;
}

/** Reads DIR/manifest.jsonl (an absent file is an empty manifest). */
export async function readManifest(dir: string): Promise<ManifestRead> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return { records: new Map(), problems: [], dirty: false };
    throw new InputError(`cannot read ${path}: ${(e as Error).message}`);
  }
  const pieces = text.split('\n');
  // The piece after the last newline is '' when the file is complete, else a cut append.
  const tail = pieces.pop() as string;
  let dirty = false;
  if (tail !== '') {
    let whole = false;
    try {
      whole = recordProblem(JSON.parse(tail)) === null;
    } catch {
      whole = false;
    }
    // Only the newline is missing: keep the record (the rewrite adds it).
    if (whole) pieces.push(tail);
    dirty = true;
  }
  const records = new Map<number, ManifestRecord>();
  const problems: string[] = [];
  pieces.forEach((line, i) => {
    let doc: unknown;
    let why: string | null;
    try {
      doc = JSON.parse(line);
      why = recordProblem(doc);
    } catch (e) {
      why = `not valid JSON (${(e as Error).message})`;
    }
    const r = doc as ManifestRecord;
    if (why === null && records.has(r.index)) why = `index ${r.index} is recorded twice (the first line is kept)`;
    if (why !== null) {
      problems.push(`${path} line ${i + 1}: ${why}: ${JSON.stringify(line.slice(0, 80))}`);
      dirty = true;
      return;
    }
    records.set(r.index, r);
  });
  return { records, problems, dirty };
}

export function manifestLine(r: ManifestRecord): string {
  return `${JSON.stringify(r)}\n`;
}

/** Replaces the manifest with `records` (atomically), in the given order. */
export async function writeManifest(dir: string, records: Iterable<ManifestRecord>): Promise<void> {
  let text = '';
  for (const r of records) text += manifestLine(r);
  await writeFileAtomic(join(dir, MANIFEST_FILE), text);
}

/** Appends one line (one write call with O_APPEND). */
export async function appendManifestLine(path: string, line: string): Promise<void> {
  await appendFile(path, line);
}
