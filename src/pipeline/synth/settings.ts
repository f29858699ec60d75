// DIR/synth.json: everything a synthetic dataset's samples depend on (vocabulary, plan,
// shard, mask rule, generation settings), written by the first run. A rerun with other
// values is refused (the folder would mix two datasets); export reads it to rebuild the
// plan, so it can tell a finished shard from an interrupted one and shards of one dataset
// from those of another.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { allPairs, planSynth, shardOf, type Shard, type SynthSample } from './plan.js';

export const SYNTH_FORMAT = 'grounded-sd synth 1';
export const SETTINGS_FILE = 'synth.json';

export interface SynthSettings {
  format: string;
  vocab: { name: string; classes: string[] };
  split: { name: string; seen: string[]; unseen: string[] } | null;
  labels: { background: number; ignore: number; classes: string };
  plan: { per_class: number; per_pair: number; pairs: 'all' | Array<[string, string]>; seed: number; samples: number };
  shard: Shard | null;
  masks: { threshold: number; overlap: string; ignore_radius: number };
  /** Model, grounding module, steps, guidance, size, BatchNorm mode, scheduler. */
  generation: Record<string, unknown>;
}

export const LABEL_RULE = { background: 0, ignore: 255, classes: 'vocabulary position + 1' } as const;
export const OVERLAP_RULE = 'the higher logit wins; an exact tie goes to the smaller label';

/** The samples of the whole dataset (every shard) described by `s`. */
export function planOf(s: SynthSettings): SynthSample[] {
  const classes = s.vocab.classes;
  const pairs = s.plan.pairs === 'all'
    ? allPairs(classes.length)
    : s.plan.pairs.map(([x, y]) => {
      const [a, b] = [classes.indexOf(x), classes.indexOf(y)];
      return (a < b ? [a, b] : [b, a]) as [number, number];
    });
  return planSynth({ classes, perClass: s.plan.per_class, perPair: s.plan.per_pair, pairs, seed: s.plan.seed });
}

/** The samples of `s`'s shard (all of them when it has none). */
export function shardPlanOf(s: SynthSettings): SynthSample[] {
  return shardOf(planOf(s), s.shard ?? undefined);
}

const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
const isNames = (v: unknown): v is string[] => Array.isArray(v) && v.every((c) => typeof c === 'string' && c !== '');

/** Why `doc` is not a synth.json of this format, or null. */
function settingsProblem(doc: unknown): string | null {
  if (typeof doc !== 'object' || doc === null) return 'not a JSON object';
  const s = doc as Partial<SynthSettings>;
  if (s.format !== SYNTH_FORMAT) return `format is ${JSON.stringify(s.format)}, not '${SYNTH_FORMAT}'`;
  if (!s.vocab || typeof s.vocab.name !== 'string' || !isNames(s.vocab.classes) || s.vocab.classes.length === 0) return 'vocab must have a name and a non-empty class list';
  const classes = s.vocab.classes;
  if (s.split !== null && (!s.split || !isNames(s.split.seen) || !isNames(s.split.unseen) || [...s.split.seen, ...s.split.unseen].some((c) => !classes.includes(c)))) {
    return 'split must be null or seen/unseen lists of the vocabulary\'s classes';
  }
  const p = s.plan;
  if (!p || !isInt(p.per_class, 0, 1e6) || !isInt(p.per_pair, 0, 1e6) || !isInt(p.seed, 0, 0xffffffff) || !isInt(p.samples, 1, Number.MAX_SAFE_INTEGER)) return 'plan must hold per_class, per_pair, seed and samples as integers';
  if (p.pairs !== 'all' && !(Array.isArray(p.pairs) && p.pairs.every((q) => isNames(q) && q.length === 2 && q[0] !== q[1] && q.every((c) => classes.includes(c))))) {
    return "plan.pairs must be 'all' or a list of two distinct vocabulary classes each";
  }
  if (s.shard !== null && !(s.shard && isInt(s.shard.count, 1, 2 ** 20) && isInt(s.shard.index, 0, s.shard.count - 1))) return 'shard must be null or {index, count} with 0 <= index < count';
  if (!s.masks || !(typeof s.masks.threshold === 'number' && s.masks.threshold > 0 && s.masks.threshold < 1) || !isInt(s.masks.ignore_radius, 0, 1000)) return 'masks must hold a threshold in (0, 1) and an ignore_radius';
  if (typeof s.generation !== 'object' || s.generation === null) return 'generation must be an object';
  return null;
}

/** Reads DIR/synth.json: undefined when absent; an InputError naming the file when it is
 *  not a valid settings file or describes a plan that does not rebuild. */
export async function readSettings(dir: string): Promise<SynthSettings | undefined> {
  const path = join(dir, SETTINGS_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined;
    throw new InputError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${path} is not valid JSON (${(e as Error).message}); it is not a grounded-sd synth folder, or the file was damaged`);
  }
  const why = settingsProblem(doc);
  if (why) throw new InputError(`${path} is not a grounded-sd synth settings file: ${why}`);
  const s = doc as SynthSettings;
  const total = planOf(s).length;
  if (total !== s.plan.samples) throw new InputError(`${path}: its plan makes ${total} samples, but it records ${s.plan.samples}; the file was edited`);
  return s;
}

/** Differences between two settings documents, one line per top-level field that differs
 *  (nested objects are compared one level down). */
export function settingsDifferences(a: SynthSettings, b: SynthSettings, ignore: ReadonlyArray<keyof SynthSettings> = []): string[] {
  const out: string[] = [];
  const nested = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const short = (v: unknown) => {
    const t = JSON.stringify(v);
    return t.length > 120 ? `${t.slice(0, 117)}...` : t;
  };
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort() as Array<keyof SynthSettings>) {
    if (ignore.includes(k)) continue;
    const [x, y] = [a[k] as unknown, b[k] as unknown];
    if (nested(x) && nested(y)) {
      for (const kk of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort()) {
        if (JSON.stringify(x[kk]) !== JSON.stringify(y[kk])) out.push(`${k}.${kk}: ${short(x[kk])} vs ${short(y[kk])}`);
      }
    } else if (JSON.stringify(x) !== JSON.stringify(y)) {
      out.push(`${k}: ${short(x)} vs ${short(y)}`);
    }
  }
  return out;
}
