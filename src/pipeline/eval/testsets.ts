// The paper's five Protocol-I test sets for a vocabulary and seen/unseen split: prompts
// naming one seen class, one unseen, two seen, a seen and an unseen, two unseen, in the
// official templates "a photograph of a X" / "a photograph of a X and a Y".
//
// Sampling rule (every draw a function of (base seed, set name, index) only, so sample i
// of a set is the same whatever --count is, and a rerun can resume by sample id):
//  - set key  K_s = streamKey(seed, nameHash(set name)) (src/tensor/hash.ts; nameHash folds
//    the name's UTF-16 codes through lowbias32);
//  - sample key k = streamKey(K_s, index); the generation seed is streamKey(k, 0);
//  - the first class cycles through its pool in shuffled rounds: index i is position
//    i mod n of round floor(i / n), each round a Fisher-Yates shuffle of the pool (in
//    split order) driven by uniform24(streamKey(K_s, ROUND_STREAM + round), j), so with
//    count = n every class of the pool is named exactly once;
//  - the second class (two-class sets) is uniform over its pool minus the first class:
//    pool2'[floor(uniform24(k, 1) * |pool2'|)], so a prompt never names a class twice;
//  - pools: one_seen / two_seen: seen, seen; one_unseen / two_unseen: unseen, unseen;
//    seen_unseen: seen first, unseen second (the prompt names the seen class first).
// A sample id is `<set>-<index>` with the index zero-padded to 4 digits.
import { InputError } from '../../gpu/errors.js';
import { lowbias32, streamKey, uniform24 } from '../../tensor/hash.js';
import { cocoSplit65_15, COCO_CLASSES, VOC_CLASSES, vocSplit, type ClassSplit } from './vocab.js';

export const TEST_SETS = ['one_seen', 'one_unseen', 'two_seen', 'seen_unseen', 'two_unseen'] as const;
export type TestSetName = (typeof TEST_SETS)[number];

/** What each set's prompts name: the pools of the first and (if any) second class. */
export const TEST_SET_POOLS: Readonly<Record<TestSetName, readonly ('seen' | 'unseen')[]>> = Object.freeze({
  one_seen: ['seen'],
  one_unseen: ['unseen'],
  two_seen: ['seen', 'seen'],
  seen_unseen: ['seen', 'unseen'],
  two_unseen: ['unseen', 'unseen'],
});

/** Row labels in the paper's wording. */
export const TEST_SET_LABELS: Readonly<Record<TestSetName, string>> = Object.freeze({
  one_seen: 'One seen object',
  one_unseen: 'One unseen object',
  two_seen: 'Two seen objects',
  seen_unseen: 'Seen + unseen objects',
  two_unseen: 'Two unseen objects',
});

export type VocabName = 'voc' | 'coco';

export interface Vocabulary {
  name: VocabName;
  classes: readonly string[];
  split: ClassSplit;
  /** The split as given on the command line ('1', '2', '3' or '65_15'). */
  splitId: string;
}

/** The class list and seen/unseen split of `voc` (split 1, 2, 3) or `coco` (65_15). */
export function vocabulary(name: string, split: string | undefined): Vocabulary {
  if (name === 'voc') {
    if (split === undefined) throw new InputError('--vocab voc needs --split 1, 2 or 3 (the official PASCAL VOC splits)');
    if (!/^[123]$/.test(split)) throw new InputError(`--split ${split} is not a PASCAL VOC split: the official splits are 1, 2 and 3`);
    return { name: 'voc', classes: VOC_CLASSES, split: vocSplit(Number(split)), splitId: split };
  }
  if (name === 'coco') {
    if (split !== undefined && split !== '65_15' && split !== '65/15') throw new InputError(`--split ${split} is not a COCO split: the one available is 65_15 (65 seen, 15 unseen)`);
    return { name: 'coco', classes: COCO_CLASSES, split: cocoSplit65_15(), splitId: '65_15' };
  }
  throw new InputError(`--vocab ${name} is not known: use voc (PASCAL VOC, 20 classes) or coco (80 classes)`);
}

export interface TestSample {
  /** `<set>-<index, 4 digits>`; stable across runs and counts. */
  id: string;
  set: TestSetName;
  index: number;
  classes: string[];
  prompt: string;
  /** Seed of the sample's initial latents. */
  seed: number;
}

/** Stream numbers of the class-order rounds, apart from the sample indices. */
const ROUND_STREAM = 0x40000000;

/** lowbias32 folded over a string's UTF-16 codes. */
export function nameHash(s: string): number {
  let h = lowbias32(s.length);
  for (let i = 0; i < s.length; i++) h = lowbias32((h ^ s.charCodeAt(i)) >>> 0);
  return h;
}

/** The official templates. */
export function templatePrompt(classes: readonly string[]): string {
  if (classes.length === 1) return `a photograph of a ${classes[0]}`;
  if (classes.length === 2) return `a photograph of a ${classes[0]} and a ${classes[1]}`;
  throw new InputError(`the Protocol-I templates name one or two classes, got ${classes.length}`);
}

/** Round `round` of the shuffled order of `pool` under set key `setKey`. */
function roundOrder(pool: readonly string[], setKey: number, round: number): string[] {
  const out = [...pool];
  const key = streamKey(setKey, ROUND_STREAM + round);
  for (let j = out.length - 1; j > 0; j--) {
    const r = Math.floor(uniform24(key, j) * (j + 1));
    [out[j], out[r]] = [out[r], out[j]];
  }
  return out;
}

/** Sample `index` of set `set`. */
export function testSample(vocab: Vocabulary, set: TestSetName, index: number, seed: number): TestSample {
  if (!Number.isSafeInteger(index) || index < 0 || index >= ROUND_STREAM) throw new InputError(`test sample index ${index} must be an integer in 0..${ROUND_STREAM - 1}`);
  const pools = TEST_SET_POOLS[set].map((p) => (p === 'seen' ? vocab.split.seen : vocab.split.unseen));
  const setKey = streamKey(seed >>> 0, nameHash(set));
  const key = streamKey(setKey, index);
  const first = pools[0];
  if (first.length === 0) throw new InputError(`test set ${set}: split '${vocab.split.name}' has no ${TEST_SET_POOLS[set][0]} classes`);
  const classes = [roundOrder(first, setKey, Math.floor(index / first.length))[index % first.length]];
  if (pools.length === 2) {
    const rest = pools[1].filter((c) => c !== classes[0]);
    if (rest.length === 0) throw new InputError(`test set ${set}: split '${vocab.split.name}' has too few classes for two distinct ones`);
    classes.push(rest[Math.floor(uniform24(key, 1) * rest.length)]);
  }
  const id = `${set}-${String(index).padStart(4, '0')}`;
  return { id, set, index, classes, prompt: templatePrompt(classes), seed: streamKey(key, 0) };
}

/** The five sets, `count` samples each, in set order then index order. */
export function buildTestSets(vocab: Vocabulary, count: number, seed: number, sets: readonly TestSetName[] = TEST_SETS): TestSample[] {
  if (!Number.isSafeInteger(count) || count < 1) throw new InputError(`--count ${count} must be a positive integer (samples per test set)`);
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) throw new InputError(`--seed ${seed} must be an integer in 0..2^32-1`);
  const out: TestSample[] = [];
  for (const set of sets) for (let i = 0; i < count; i++) out.push(testSample(vocab, set, i, seed));
  return out;
}
