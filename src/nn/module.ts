// Parameter slots and state-dict walking. Models are plain classes whose fields are
// named like the weights (diffusers/transformers/official names): a Param field `weight`
// inside field `to_q` inside array `attentions` index 0 is `attentions.0.to_q.weight`.
// namedParams() derives every name from the object tree, so no name table is needed.
import { ShapeError, WeightError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { Tensor } from '../tensor/tensor.js';

/** One weight or buffer: its expected shape and, once loaded, its GPU tensor. */
export class Param {
  value: Tensor | null = null;
  constructor(
    readonly shape: readonly number[],
    /** Buffers (running statistics, spectral-norm vectors) are state, not trained. */
    readonly kind: 'param' | 'buffer' = 'param',
  ) {}

  get t(): Tensor {
    if (!this.value) throw new WeightError(`parameter of shape [${this.shape.join(',')}] used before its weights were loaded`);
    return this.value;
  }

  set(t: Tensor): void {
    if (t.shape.length !== this.shape.length || t.shape.some((d, i) => d !== this.shape[i])) {
      throw new ShapeError(`parameter expects [${this.shape.join(',')}], got [${t.shape.join(',')}]`);
    }
    this.value?.dispose();
    this.value = t;
  }
}

/** Base class for model parts; only marks what namedParams() descends into. */
export abstract class Module {}

function walk(value: unknown, prefix: string, out: Map<string, Param>): void {
  if (value instanceof Param) {
    out.set(prefix, value);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => walk(v, prefix ? `${prefix}.${i}` : `${i}`, out));
  } else if (value instanceof Module) {
    for (const [k, v] of Object.entries(value)) {
      if (v instanceof Param || v instanceof Module || Array.isArray(v)) walk(v, prefix ? `${prefix}.${k}` : k, out);
    }
  }
}

/** Every Param under `root`, keyed by its state-dict name, in field order. */
export function namedParams(root: Module, prefix = ''): Map<string, Param> {
  const out = new Map<string, Param>();
  walk(root, prefix, out);
  return out;
}

/** Where weights come from: a safetensors file, a diffusers folder, a mapped checkpoint. */
export interface WeightSource {
  /** Every tensor name the source has. */
  names(): string[];
  shape(name: string): readonly number[];
  /** Loads one tensor to the GPU as f32 or f16. */
  load(rt: Runtime, name: string, dtype: 'f32' | 'f16'): Promise<Tensor>;
  /** Describes the source in error messages (a path). */
  readonly description: string;
  /** What the source's file looks like ("a VAE (encoder.*, decoder.*)"), shown when most
   *  of the model is missing from it. */
  looksLike?(): string;
}

export interface LoadOptions {
  dtype?: 'f32' | 'f16';
  /** Prefix in the source in front of the module's names (e.g. 'text_model.'). */
  prefix?: string;
  /** Names in the source that may be present without a matching Param. */
  ignore?: (name: string) => boolean;
  /** Fail on source tensors under the prefix that the module does not use (default true). */
  strict?: boolean;
}

/** Names shown per kind of problem; the rest are counted. */
const SHOWN = 5;

/** True when `a` and `b` differ only by a trailing [1, 1]: PyTorch stores a 1x1 conv
 *  weight as [O, I, 1, 1] where a Linear of the same weights is [O, I] (LDM's VAE
 *  attention, SD's proj_in/proj_out). Any other difference, even with the same element
 *  count (a transposed or permuted weight), is a mismatch. */
function conv1x1Linear(a: readonly number[], b: readonly number[]): boolean {
  const [long, short] = a.length > b.length ? [a, b] : [b, a];
  return long.length === short.length + 2 && long[long.length - 1] === 1 && long[long.length - 2] === 1 && short.every((d, i) => d === long[i]);
}

/** Loads every Param of `root` from `source`. All missing, unexpected and mis-shaped
 *  names are collected first and reported together in one WeightError: counts, the
 *  first few names of each kind, and, when most of the model is absent, what the file
 *  looks like instead. */
export async function loadWeights(rt: Runtime, root: Module, source: WeightSource, opts: LoadOptions = {}): Promise<void> {
  const prefix = opts.prefix ?? '';
  const params = namedParams(root);
  const available = new Set(source.names().filter((n) => n.startsWith(prefix)));
  const missing: string[] = [];
  const mismatched: string[] = [];
  for (const [name, p] of params) {
    const full = prefix + name;
    if (!available.has(full)) {
      missing.push(full);
      continue;
    }
    const s = source.shape(full);
    const same = s.length === p.shape.length && s.every((d, i) => d === p.shape[i]);
    if (!same && !conv1x1Linear(s, p.shape)) mismatched.push(`${full}: expected [${p.shape.join(',')}], found [${s.join(',')}]`);
  }
  const used = new Set([...params.keys()].map((n) => prefix + n));
  const unexpected = opts.strict === false ? [] : [...available].filter((n) => !used.has(n) && !(opts.ignore?.(n) ?? false));
  if (missing.length || mismatched.length || unexpected.length) {
    throw new WeightError(mismatchReport(root, source, params.size, { missing, 'shape mismatch': mismatched, unexpected }));
  }
  for (const [name, p] of params) {
    const t = await source.load(rt, prefix + name, opts.dtype ?? 'f32');
    p.set(t.shape.length === p.shape.length ? t : reshapeOwned(t, p.shape));
  }
}

function mismatchReport(root: Module, source: WeightSource, total: number, problems: Record<string, string[]>): string {
  const model = root.constructor.name;
  const counts = Object.entries(problems).filter(([, xs]) => xs.length).map(([k, xs]) => `${xs.length} ${k}`);
  const missing = problems.missing.length;
  let head = `weights in ${source.description} do not match ${model} (${total} tensors): ${counts.join(', ')}`;
  if (missing > total / 2 && source.looksLike) {
    head += `; the file looks like ${source.looksLike()}, not ${model} weights: check which file is where`;
  } else {
    head += '; the file and the model config do not belong together: check the weights path and config.json';
  }
  const lines = [head];
  for (const [kind, xs] of Object.entries(problems)) {
    if (!xs.length) continue;
    const more = xs.length > SHOWN ? `, ... and ${xs.length - SHOWN} more` : '';
    lines.push(`  ${kind} (${xs.length}): ${xs.slice(0, SHOWN).join(', ')}${more}`);
  }
  return lines.join('\n');
}

function reshapeOwned(t: Tensor, shape: readonly number[]): Tensor {
  const v = t.reshape(shape);
  t.dispose();
  return v;
}

/** Frees every loaded parameter. */
export function disposeParams(root: Module): void {
  for (const p of namedParams(root).values()) {
    p.value?.dispose();
    p.value = null;
  }
}

export function countParams(root: Module): number {
  let n = 0;
  for (const p of namedParams(root).values()) if (p.kind === 'param') n += p.shape.reduce((a, b) => a * b, 1);
  return n;
}
