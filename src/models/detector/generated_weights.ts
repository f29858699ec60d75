// The detector fixtures' weight generator (golden/detector/README.md section 3): every
// parameter is a hash of (seed, fnv1a32(name), flat index), mapped to
//   value_i = fround(c_i + a * (2 u_i - 1)),   u_i = top 24 bits of lowbias32(base + i) / 2^24
// with c_i the tensor's centre (or its override), a its half-width, the multiply and add
// in float64 and one rounding to float32. The manifest's `weights.tensors` table gives
// shape, centre, half-width and overrides per state-dict name; it is authoritative.
// Tensors that are not F32 (BatchNorm2d's int64 num_batches_tracked) are not generated.
import { InputError } from '../../gpu/errors.js';
import type { Runtime } from '../../gpu/runtime.js';
import type { WeightSource } from '../../nn/module.js';
import { streamKey, uniform24 } from '../../tensor/hash.js';
import { Tensor } from '../../tensor/tensor.js';

/** FNV-1a (32-bit) of the UTF-8 bytes of `name`. */
export function fnv1a32(name: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(name)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h >>> 0;
}

/** One entry of a manifest's `weights.tensors`. */
export interface GeneratedTensorSpec {
  shape: number[];
  dtype: string;
  stream?: number;
  center?: number;
  halfwidth?: number;
  /** Per-element centres, as {"index": centre} or a full list. */
  override_centers?: Record<string, number> | number[];
  sum_f64?: number;
}

export interface GeneratedWeights {
  seed: number;
  tensors: Record<string, GeneratedTensorSpec>;
}

const numelOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The uniforms u_i in [0, 1) of stream `name` (inputs are u_i themselves, exact in f32). */
export function generatedUniforms(name: string, seed: number, n: number): Float32Array {
  const key = streamKey(seed >>> 0, fnv1a32(name));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = uniform24(key, i);
  return out;
}

/** The values of tensor `name` under `spec` (float32). */
export function generateTensor(name: string, spec: GeneratedTensorSpec, seed: number, where = 'weights'): Float32Array {
  const stream = fnv1a32(name);
  if (spec.stream !== undefined && spec.stream !== stream) {
    throw new InputError(`${where}: tensor '${name}' lists stream ${spec.stream}, but fnv1a32 of its name is ${stream}; the table and the generator disagree`);
  }
  const a = spec.halfwidth;
  const center = spec.center;
  if (typeof a !== 'number' || typeof center !== 'number') {
    throw new InputError(`${where}: tensor '${name}' has no numeric center/halfwidth; it cannot be generated`);
  }
  const n = numelOf(spec.shape);
  const centres = new Float64Array(n).fill(center);
  const ov = spec.override_centers;
  if (ov !== undefined) {
    const entries: [number, number][] = Array.isArray(ov) ? ov.map((v, i) => [i, v]) : Object.entries(ov).map(([k, v]) => [Number(k), v]);
    for (const [i, v] of entries) {
      if (!Number.isInteger(i) || i < 0 || i >= n || typeof v !== 'number') throw new InputError(`${where}: tensor '${name}' has an override centre at ${i} = ${v} outside its ${n} values`);
      centres[i] = v;
    }
  }
  const key = streamKey(seed >>> 0, stream);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = 2 * uniform24(key, i) - 1;
    out[i] = Math.fround(centres[i] + a * r);
  }
  return out;
}

/** A WeightSource over the generated tensors of a manifest's `weights` block (F32 only). */
export function generatedWeightSource(weights: GeneratedWeights, description: string): WeightSource & { values(name: string): Float32Array } {
  if (typeof weights !== 'object' || weights === null || typeof weights.tensors !== 'object' || weights.tensors === null) {
    throw new InputError(`${description}: no 'weights.tensors' table to generate weights from`);
  }
  const seed = Number(weights.seed ?? 0);
  const specs = new Map(Object.entries(weights.tensors).filter(([, s]) => s.dtype === 'F32'));
  const spec = (name: string) => {
    const s = specs.get(name);
    if (!s) throw new InputError(`${description}: no generated tensor '${name}'`);
    return s;
  };
  return {
    description,
    names: () => [...specs.keys()],
    shape: (name) => spec(name).shape,
    values: (name) => generateTensor(name, spec(name), seed, description),
    load: async (rt: Runtime, name: string, dtype: 'f32' | 'f16') => Tensor.from(rt, generateTensor(name, spec(name), seed, description), spec(name).shape, dtype, name),
  };
}
