// What a Protocol-II synthetic dataset holds: for a vocabulary, N images per class
// ("a photograph of a X") and M per class pair ("a photograph of a X and a Y"), over ALL
// classes, seen and unseen (the paper: 500 per class and 71 per co-occurring pair).
//
// Which pairs: the paper does not list its "co-occurring" pairs and the official
// repository ships no code or file for this protocol, so the set is a parameter: by
// default every unordered pair of distinct classes (190 for VOC, 3160 for COCO), or the
// pairs listed in a file (--pair-list; e.g. the pairs that co-occur in VOC's
// train set, counted from its annotations). See plan rule below.
//
// Rule (every value a function of (base seed, class indices, repeat j), so a sample never
// depends on N, M, the shard or what was generated before it):
//  - classes are numbered by their vocabulary position a = 0..n-1; the label of class a in
//    the label maps is a + 1 (0 is background, 255 the optional 'ignore' band), so VOC's
//    labels are its SegmentationClass labels;
//  - a single-class sample (a, j) has key streamKey(streamKey(streamKey(seed, a + 1), 0), j);
//    a pair sample (a < b, j) has key streamKey(streamKey(streamKey(seed, a + 1), b + 1), j);
//    the sample's generation seed is streamKey(key, 0) (src/tensor/hash.ts);
//  - a pair's prompt names a first for even j and b first for odd j, so neither class is
//    always the first word;
//  - ids: 'c<a>-<j>' and 'p<a>-<b>-<j>' with a, b zero-padded to 3 digits and j to 5;
//  - order: single samples by j then class, then pair samples by j then pair (list order),
//    so an interrupted run has every class at similar counts;
//  - shards: --shard i/n takes the samples at positions k of that order with k % n == i.
import { InputError } from '../../gpu/errors.js';
import { streamKey } from '../../tensor/hash.js';

/** Labels 1..254 are classes (0 background, 255 ignore). */
export const MAX_CLASSES = 254;
/** Largest N and M (ids keep all digits past 5, but a run this long is a mistake). */
export const MAX_REPEATS = 1_000_000;

export type SynthKind = 'single' | 'pair';

export interface SynthSample {
  id: string;
  kind: SynthKind;
  /** Vocabulary positions of the classes, ascending (the pair (a, b), a < b). */
  classIndices: number[];
  /** The classes in prompt order, and their labels (vocabulary position + 1). */
  classes: string[];
  labels: number[];
  /** The sample's number among those of its class or pair. */
  repeat: number;
  prompt: string;
  /** Seed of the initial latents. */
  seed: number;
}

export interface SynthPlanSpec {
  classes: readonly string[];
  /** Images per class. */
  perClass: number;
  /** Unordered class pairs [a, b], a < b, as vocabulary positions. */
  pairs: ReadonlyArray<readonly [number, number]>;
  /** Images per pair. */
  perPair: number;
  seed: number;
}

const pad = (v: number, n: number) => String(v).padStart(n, '0');

/** The official templates. */
export function synthPrompt(classes: readonly string[]): string {
  return classes.length === 1 ? `a photograph of a ${classes[0]}` : `a photograph of a ${classes[0]} and a ${classes[1]}`;
}

export function singleSample(classes: readonly string[], a: number, j: number, seed: number): SynthSample {
  const key = streamKey(streamKey(streamKey(seed >>> 0, a + 1), 0), j);
  return {
    id: `c${pad(a, 3)}-${pad(j, 5)}`, kind: 'single', classIndices: [a], classes: [classes[a]], labels: [a + 1], repeat: j,
    prompt: synthPrompt([classes[a]]), seed: streamKey(key, 0),
  };
}

export function pairSample(classes: readonly string[], a: number, b: number, j: number, seed: number): SynthSample {
  if (!(a < b)) throw new InputError(`class pair (${a}, ${b}) must be ordered a < b`);
  const key = streamKey(streamKey(streamKey(seed >>> 0, a + 1), b + 1), j);
  const order = j % 2 === 0 ? [a, b] : [b, a];
  const names = order.map((k) => classes[k]);
  return {
    id: `p${pad(a, 3)}-${pad(b, 3)}-${pad(j, 5)}`, kind: 'pair', classIndices: [a, b], classes: names, labels: order.map((k) => k + 1), repeat: j,
    prompt: synthPrompt(names), seed: streamKey(key, 0),
  };
}

/** Every unordered pair of distinct classes, (0,1), (0,2), ..., (n-2, n-1). */
export function allPairs(n: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) out.push([a, b]);
  return out;
}

function checkCount(name: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min || v > MAX_REPEATS) throw new InputError(`${name} ${v} must be an integer in ${min}..${MAX_REPEATS}`);
}

/** The whole dataset in plan order. */
export function planSynth(s: SynthPlanSpec): SynthSample[] {
  const n = s.classes.length;
  if (n === 0) throw new InputError('the vocabulary has no classes');
  if (n > MAX_CLASSES) throw new InputError(`the vocabulary has ${n} classes; label maps hold at most ${MAX_CLASSES} (one byte per pixel, 0 background, 255 ignore)`);
  checkCount('--per-class', s.perClass, 0);
  checkCount('--pairs', s.perPair, 0);
  if (!Number.isSafeInteger(s.seed) || s.seed < 0 || s.seed > 0xffffffff) throw new InputError(`--seed ${s.seed} must be an integer in 0..2^32-1`);
  for (const [a, b] of s.pairs) {
    if (!(Number.isInteger(a) && Number.isInteger(b) && a >= 0 && a < b && b < n)) throw new InputError(`class pair (${a}, ${b}) is not two distinct vocabulary positions in 0..${n - 1}, smaller first`);
  }
  if (s.perClass === 0 && (s.perPair === 0 || s.pairs.length === 0)) {
    throw new InputError('nothing to generate: --per-class is 0 and there are no pair samples (--pairs 0 or an empty pair list); ask for at least one image');
  }
  const out: SynthSample[] = [];
  for (let j = 0; j < s.perClass; j++) for (let a = 0; a < n; a++) out.push(singleSample(s.classes, a, j, s.seed));
  for (let j = 0; j < s.perPair; j++) for (const [a, b] of s.pairs) out.push(pairSample(s.classes, a, b, j, s.seed));
  return out;
}

export interface Shard {
  index: number;
  count: number;
}

/** Parses `i/n` (integers, 0 <= i < n <= 2^20). */
export function parseShard(spec: string): Shard {
  const m = /^(\d{1,7})\/(\d{1,7})$/.exec(spec);
  if (!m) throw new InputError(`--shard ${spec} must be i/n with integers 0 <= i < n (e.g. 0/4 for the first of four shards)`);
  const [index, count] = [Number(m[1]), Number(m[2])];
  if (count < 1 || count > 2 ** 20) throw new InputError(`--shard ${spec}: the shard count n must be in 1..${2 ** 20}`);
  if (index >= count) throw new InputError(`--shard ${spec}: the shard index i must be below the count n (shards are numbered 0..${count - 1})`);
  return { index, count };
}

/** The samples of `plan` a shard makes (all of them without one). */
export function shardOf<T>(plan: readonly T[], shard?: Shard): T[] {
  return shard ? plan.filter((_, k) => k % shard.count === shard.index) : [...plan];
}
