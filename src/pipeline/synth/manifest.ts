// DIR/manifest.jsonl of a synthetic dataset: one JSON line per finished sample, appended
// only after its image and label map were written (each atomically). A sample is finished
// exactly when its line is here; files without a line are an interrupted write and are
// replaced by the rerun.
//
// Appends are not atomic: an interruption can cut the last line short. A last line that
// does not parse is dropped (its sample is made again). Any other line that is not a valid
// record, or repeats an id, is reported and ignored, never trusted.
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { writeFileAtomic } from '../../io/atomic.js';

export const MANIFEST_FILE = 'manifest.jsonl';

export interface SynthRecord {
  id: string;
  kind: 'single' | 'pair';
  /** Classes in prompt order and their labels. */
  classes: string[];
  labels: number[];
  repeat: number;
  prompt: string;
  seed: number;
  width: number;
  height: number;
  /** Paths relative to the dataset folder. */
  image: string;
  label: string;
  /** Pixels per label value in the label map (keys are the labels). */
  pixels: Record<string, number>;
  /** Non-fatal notes of the generation (a prompt cut at the token limit). */
  warnings: string[];
}

export interface ManifestRead {
  /** Valid records by id, in file order. */
  records: Map<string, SynthRecord>;
  /** Lines that were ignored, with the reason. */
  problems: string[];
  /** True when the file should be rewritten before appending (a cut last line, bad lines). */
  dirty: boolean;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Why `doc` is not a manifest record, or null. */
export function recordProblem(doc: unknown): string | null {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'not a JSON object';
  const r = doc as Partial<SynthRecord>;
  if (typeof r.id !== 'string' || !/^[A-Za-z0-9-]+$/.test(r.id)) return `id ${JSON.stringify(r.id)} is not a sample id`;
  if (r.kind !== 'single' && r.kind !== 'pair') return `kind ${JSON.stringify(r.kind)} is neither 'single' nor 'pair'`;
  const n = r.kind === 'single' ? 1 : 2;
  if (!Array.isArray(r.classes) || r.classes.length !== n || !r.classes.every((c) => typeof c === 'string' && c !== '')) return `classes must name ${n} class(es)`;
  if (!Array.isArray(r.labels) || r.labels.length !== n || !r.labels.every((l) => Number.isInteger(l) && l >= 1 && l <= 254)) return `labels must be ${n} integer(s) in 1..254`;
  if (!isCount(r.repeat) || !isCount(r.seed) || typeof r.prompt !== 'string') return 'repeat, seed or prompt missing or of the wrong type';
  if (!isCount(r.width) || !isCount(r.height) || r.width === 0 || r.height === 0) return 'width and height must be positive integers';
  if (r.image !== `images/${r.id}.png` || r.label !== `labels/${r.id}.png`) return `image/label must be images/${r.id}.png and labels/${r.id}.png`;
  if (typeof r.pixels !== 'object' || r.pixels === null) return 'pixels must map labels to pixel counts';
  let total = 0;
  for (const [k, v] of Object.entries(r.pixels)) {
    if (!/^\d+$/.test(k) || Number(k) > 255 || !isCount(v)) return `pixels.${k} = ${JSON.stringify(v)} is not a pixel count of a label 0..255`;
    total += v;
  }
  if (total !== r.width * r.height) return `pixels sum to ${total}, the image has ${r.width * r.height}`;
  if (!Array.isArray(r.warnings) || !r.warnings.every((w) => typeof w === 'string')) return 'warnings must be a list of strings';
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
  const lines = text.split('\n');
  // The piece after the last newline is '' when the file ends cleanly, else a cut append.
  const tail = lines.pop() as string;
  let dirty = false;
  if (tail !== '') {
    dirty = true;
    let whole = false;
    try {
      whole = recordProblem(JSON.parse(tail)) === null;
    } catch {
      whole = false;
    }
    // Only the newline is missing: keep the record (the rewrite adds the newline).
    if (whole) lines.push(tail);
  }
  const records = new Map<string, SynthRecord>();
  const problems: string[] = [];
  lines.forEach((line, i) => {
    let doc: unknown;
    let why: string | null;
    try {
      doc = JSON.parse(line);
      why = recordProblem(doc);
    } catch (e) {
      why = `not valid JSON (${(e as Error).message})`;
    }
    if (why === null && records.has((doc as SynthRecord).id)) why = `sample ${(doc as SynthRecord).id} is recorded twice (the first line is kept)`;
    if (why !== null) {
      problems.push(`${path} line ${i + 1}: ${why}: ${JSON.stringify(line.slice(0, 80))}`);
      dirty = true;
      return;
    }
    records.set((doc as SynthRecord).id, doc as SynthRecord);
  });
  return { records, problems, dirty };
}

/** Replaces the manifest with `records` (atomically), in the given order. */
export async function writeManifest(dir: string, records: Iterable<SynthRecord>): Promise<void> {
  let text = '';
  for (const r of records) text += `${JSON.stringify(r)}\n`;
  await writeFileAtomic(join(dir, MANIFEST_FILE), text);
}

/** Appends one record (one write call, O_APPEND). */
export async function appendRecord(dir: string, r: SynthRecord): Promise<void> {
  await appendFile(join(dir, MANIFEST_FILE), `${JSON.stringify(r)}\n`);
}
