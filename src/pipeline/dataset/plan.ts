// What sample i of a dataset is, as a pure function of (seen classes, base seed, i), so a
// sample does not depend on --count, on the shard that builds it or on what was built
// before it (a resumed or sharded build makes the same samples as one uninterrupted run).
//
// Rule (official train.py prompts, "a photograph of a X" / "a photograph of a X and a Y"
// over the seen classes, half each):
//  - key k = streamKey(seed, i) (src/tensor/hash.ts);
//  - even i: one class, odd i: two classes (so any count is half and half, +-1);
//  - first class  seen[floor(uniform24(k, 1) * |seen|)];
//  - second class (odd i) uniform over the seen classes minus the first:
//    rest[floor(uniform24(k, 2) * |rest|)], so a prompt never names a class twice;
//  - the generation seed (initial latents, pipeline/latents.ts) is streamKey(k, 0).
// Sample ids are the index zero-padded to 6 digits ('000042'); larger indices keep all
// their digits.
//
// Shards: --shard i/n builds the indices k with k % n == i.
import { InputError } from '../../gpu/errors.js';
import { streamKey, uniform24 } from '../../tensor/hash.js';

export interface PlannedSample {
  index: number;
  id: string;
  classes: string[];
  prompt: string;
  /** Seed of the sample's initial latents. */
  seed: number;
}

/** Largest sample index (the key stream and ids stay exact well below 2^31). */
export const MAX_INDEX = 2 ** 31 - 1;

export function sampleId(index: number): string {
  return String(index).padStart(6, '0');
}

/** The official templates. */
export function datasetPrompt(classes: readonly string[]): string {
  return classes.length === 1 ? `a photograph of a ${classes[0]}` : `a photograph of a ${classes[0]} and a ${classes[1]}`;
}

/** Sample `index` over the `seen` classes under base seed `seed`. */
export function planSample(seen: readonly string[], seed: number, index: number): PlannedSample {
  if (!Number.isSafeInteger(index) || index < 0 || index > MAX_INDEX) throw new InputError(`dataset sample index ${index} must be an integer in 0..${MAX_INDEX}`);
  if (seen.length === 0) throw new InputError('the split has no seen classes: training prompts are built over the seen classes; list at least one (two for two-class prompts)');
  const key = streamKey(seed >>> 0, index);
  const first = seen[Math.floor(uniform24(key, 1) * seen.length)];
  const classes = [first];
  if (index % 2 === 1) {
    const rest = seen.filter((c) => c !== first);
    if (rest.length === 0) throw new InputError(`two-class prompts need two seen classes, but the split has only '${first}'; add seen classes`);
    classes.push(rest[Math.floor(uniform24(key, 2) * rest.length)]);
  }
  return { index, id: sampleId(index), classes, prompt: datasetPrompt(classes), seed: streamKey(key, 0) };
}

export interface Shard {
  index: number;
  count: number;
}

/** Parses `i/n` (0 <= i < n, integers, n <= 2^20). */
export function parseShard(spec: string): Shard {
  const m = /^(\d{1,7})\/(\d{1,7})$/.exec(spec.trim());
  if (!m) throw new InputError(`--shard ${spec} must be i/n with integers 0 <= i < n (e.g. 0/4 for the first of four shards)`);
  const [index, count] = [Number(m[1]), Number(m[2])];
  if (count < 1 || count > 2 ** 20) throw new InputError(`--shard ${spec}: the shard count n must be in 1..${2 ** 20}`);
  if (index >= count) throw new InputError(`--shard ${spec}: the shard index i must be below the count n (shards are numbered 0..${count - 1})`);
  return { index, count };
}

/** The indices 0..count-1 a shard builds (all of them without a shard). */
export function shardIndices(count: number, shard?: Shard): number[] {
  if (!Number.isSafeInteger(count) || count < 1 || count - 1 > MAX_INDEX) throw new InputError(`--count ${count} must be an integer in 1..${MAX_INDEX + 1}`);
  const out: number[] = [];
  const [start, step] = shard ? [shard.index, shard.count] : [0, 1];
  for (let k = start; k < count; k += step) out.push(k);
  return out;
}
