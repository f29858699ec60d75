// WeightSource (src/nn/module.ts) implementations over safetensors files: one file, or a
// view of a file through a name mapping (single-file checkpoints with LDM names). Loads
// refuse NaN/Inf values (SafetensorsFile.toTensor's `finite`), naming the tensor.
import type { Runtime } from '../gpu/runtime.js';
import { WeightError } from '../gpu/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { SafetensorsFile } from './safetensors.js';
import { describeWeightNames } from './weight_kind.js';

/** The interface loadWeights() consumes (structurally identical to nn/module.ts). */
export interface TensorSource {
  names(): string[];
  shape(name: string): readonly number[];
  load(rt: Runtime, name: string, dtype: 'f32' | 'f16'): Promise<Tensor>;
  readonly description: string;
  /** What the underlying file looks like ("a VAE (encoder.*, decoder.*)"), for errors. */
  looksLike?(): string;
}

/** Every tensor of one safetensors file under its own name. */
export function safetensorsSource(file: SafetensorsFile): TensorSource {
  return {
    description: file.path,
    names: () => [...file.tensors.keys()],
    shape: (name) => file.info(name).shape,
    load: (rt, name, dtype) => file.toTensor(rt, name, dtype, undefined, { finite: true }),
    looksLike: () => describeWeightNames([...file.tensors.keys()]),
  };
}

/** A renamed view: `map` takes a file name to the model's name (or null to hide it). */
export function mappedSource(files: SafetensorsFile[], map: (name: string) => string | null, description: string): TensorSource {
  const table = new Map<string, { file: SafetensorsFile; name: string }>();
  for (const file of files) {
    for (const name of file.tensors.keys()) {
      const to = map(name);
      if (to === null) continue;
      const prev = table.get(to);
      if (prev) throw new WeightError(`${description}: both '${prev.name}' and '${name}' map to '${to}'`);
      table.set(to, { file, name });
    }
  }
  const entry = (name: string) => {
    const e = table.get(name);
    if (!e) throw new WeightError(`${description}: no tensor '${name}'`);
    return e;
  };
  return {
    description,
    names: () => [...table.keys()],
    shape: (name) => {
      const e = entry(name);
      return e.file.info(e.name).shape;
    },
    load: (rt, name, dtype) => {
      const e = entry(name);
      return e.file.toTensor(rt, e.name, dtype, undefined, { finite: true });
    },
    looksLike: () => describeWeightNames(files.flatMap((f) => [...f.tensors.keys()])),
  };
}
