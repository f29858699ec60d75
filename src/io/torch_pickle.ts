// PyTorch checkpoints as weight sources: `loadCheckpoint` opens a torch.save file (zip or
// legacy; a Lightning checkpoint's `state_dict` is taken), or a safetensors file, and
// serves its tensors by state-dict name like a safetensors file does, streaming each one
// to the GPU in bounded chunks (bf16/f16/f64 widened or rounded to the requested f32/f16).
// `readTorchFile` (torch_file.ts) is the lower level: the whole rebuilt object.
import { extname } from 'node:path';
import type { Runtime } from '../gpu/runtime.js';
import { WeightError } from '../gpu/errors.js';
import { Tensor } from '../tensor/tensor.js';
import { openRegularFile, readAt } from './zip.js';
import { SafetensorsFile, type SafeDType } from './safetensors.js';
import { leaves, readTorchFile, sniff, stateDictOf } from './torch_file.js';
import { FLOAT_DTYPES, ITEMSIZE, LazyTensor, bytesToF16, bytesToF32, numelOf, type TorchDType } from './torch_tensor.js';
import { describeWeightNames } from './weight_kind.js';
import type { TensorSource } from './weight_source.js';

export { TorchPickleError, PyDict, PySet, isTuple } from './pickle.js';
export { LazyTensor, TorchStorage, isContiguous, type TorchDType } from './torch_tensor.js';
export { PyGlobal, TorchDTypeValue, leaves, readTorchFile, stateDictOf, type TorchFile } from './torch_file.js';

/** File extensions that name torch.save files (Lightning .ckpt, .pth, .pt, transformers' .bin). */
export const TORCH_CHECKPOINT_EXTENSIONS = ['.ckpt', '.pth', '.pt', '.bin'] as const;

export function isTorchCheckpointPath(path: string): boolean {
  return (TORCH_CHECKPOINT_EXTENSIONS as readonly string[]).includes(extname(path).toLowerCase());
}

export interface CheckpointTensor {
  name: string;
  dtype: TorchDType;
  shape: readonly number[];
}

export interface CheckpointSource extends TensorSource {
  readonly path: string;
  readonly format: 'zip' | 'legacy' | 'safetensors';
  info(name: string): CheckpointTensor;
  /** Every element in row-major order, little-endian, in the tensor's own dtype. */
  readBytes(name: string): Promise<Uint8Array>;
  readF32(name: string): Promise<Float32Array>;
  /** The same tensors under other names: `map` takes a file name to a model name, or
   *  null to hide it (single-file LDM checkpoints through ldm_keys.ts). */
  renamed(map: (name: string) => string | null, description: string): TensorSource;
  close(): Promise<void>;
}

/** Bytes of source data per host chunk when streaming a tensor to the GPU. */
const CHUNK_BYTES = 16 << 20;

const FROM_SAFE: Record<SafeDType, TorchDType> = {
  F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64', I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8',
  U8: 'uint8', U16: 'uint16', U32: 'uint32', U64: 'uint64', BOOL: 'bool',
};

interface Entry extends CheckpointTensor {
  /** Elements [start, start + count) of the row-major tensor. */
  range(start: number, count: number): Promise<Uint8Array>;
  all(): Promise<Uint8Array>;
}

/** Opens a torch.save checkpoint (or a safetensors file) as a tensor source. */
export async function loadCheckpoint(path: string): Promise<CheckpointSource> {
  const fh = await openRegularFile(path);
  const head = new Uint8Array(16);
  try {
    await readAt(fh, head.subarray(0, Math.min((await fh.stat()).size, 16)), 0, path);
  } finally {
    await fh.close();
  }
  if (sniff(head) === 'safetensors') return fromSafetensors(await SafetensorsFile.open(path));
  const file = await readTorchFile(path);
  try {
    const entries = new Map<string, Entry>();
    for (const [name, v] of leaves(stateDictOf(file.root))) {
      if (!(v instanceof LazyTensor)) continue;
      if (entries.has(name)) throw new WeightError(`${path}: two tensors are named '${name}' (dict keys containing '.'); the checkpoint is ambiguous`);
      entries.set(name, lazyEntry(name, v));
    }
    return makeSource(path, file.format, entries, () => file.close());
  } catch (err) {
    await file.close();
    throw err;
  }
}

function lazyEntry(name: string, t: LazyTensor): Entry {
  let cached: Promise<Uint8Array> | null = null;
  const all = () => t.readBytes();
  const size = ITEMSIZE[t.dtype];
  return {
    name, dtype: t.dtype, shape: t.shape, all,
    // Non-contiguous views are gathered once, then served by range.
    range: t.contiguous ? (s, c) => t.readRange(s, c) : async (s, c) => (await (cached ??= all())).subarray(s * size, (s + c) * size),
  };
}

function fromSafetensors(file: SafetensorsFile): CheckpointSource {
  const entries = new Map<string, Entry>();
  for (const [name, info] of file.tensors) {
    const dtype = FROM_SAFE[info.dtype];
    const size = ITEMSIZE[dtype];
    const all = () => file.readRaw(name);
    entries.set(name, { name, dtype, shape: info.shape, all, range: async (s, c) => (await all()).subarray(s * size, (s + c) * size) });
  }
  return makeSource(file.path, 'safetensors', entries, () => file.close());
}

function makeSource(path: string, format: CheckpointSource['format'], entries: Map<string, Entry>, close: () => Promise<void>): CheckpointSource {
  const entry = (name: string, description = path) => {
    const e = entries.get(name);
    if (!e) throw new WeightError(`${description}: no tensor named '${name}' (the checkpoint has ${entries.size} tensors)`);
    return e;
  };
  const looksLike = () => describeWeightNames([...entries.keys()]);
  return {
    path, format, description: path, looksLike, close,
    names: () => [...entries.keys()],
    shape: (name) => entry(name).shape,
    info: (name) => {
      const { dtype, shape } = entry(name);
      return { name, dtype, shape };
    },
    readBytes: (name) => entry(name).all(),
    readF32: async (name) => {
      const e = entry(name);
      return bytesToF32(await e.all(), e.dtype, path);
    },
    load: (rt, name, dtype) => upload(rt, entry(name), dtype, path),
    renamed: (map, description) => {
      const table = new Map<string, string>();
      for (const name of entries.keys()) {
        const to = map(name);
        if (to === null) continue;
        const prev = table.get(to);
        if (prev !== undefined) throw new WeightError(`${description}: both '${prev}' and '${name}' map to '${to}'`);
        table.set(to, name);
      }
      const from = (name: string) => {
        const n = table.get(name);
        if (n === undefined) throw new WeightError(`${description}: no tensor '${name}'`);
        return entry(n, description);
      };
      return {
        description, looksLike,
        names: () => [...table.keys()],
        shape: (name) => from(name).shape,
        load: (rt, name, dtype) => upload(rt, from(name), dtype, description),
      };
    },
  };
}

/** Streams one float tensor to a new GPU tensor in chunks of at most CHUNK_BYTES source
 *  bytes. Like the safetensors loader, it refuses NaN/Inf weights and f16 overflow by name. */
async function upload(rt: Runtime, e: Entry, to: 'f32' | 'f16', where: string): Promise<Tensor> {
  if (!FLOAT_DTYPES.has(e.dtype)) {
    throw new WeightError(`${where}: tensor '${e.name}' is ${e.dtype}; only float32/float16/bfloat16/float64 tensors load as weights`);
  }
  const n = numelOf(e.shape);
  // An even element count per chunk keeps f16 writes 4-byte aligned (queue.writeBuffer).
  const per = Math.max(2, Math.floor(CHUNK_BYTES / ITEMSIZE[e.dtype] / 2) * 2);
  const out = Tensor.empty(rt, e.shape, to, e.name, 'exact');
  try {
    for (let start = 0; start < n; start += per) {
      const count = Math.min(per, n - start);
      const bytes = await e.range(start, count);
      const wide = bytesToF32(bytes, e.dtype, where);
      const chunk = to === 'f32' ? wide : bytesToF16(bytes, e.dtype, where).bits;
      const bad = wide.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) {
        throw new WeightError(`${where}: tensor '${e.name}' ${e.dtype}[${e.shape.join(',')}]: element ${start + bad} is ${wide[bad]}; a non-finite weight makes every output NaN (a black image): the file is corrupt, re-download or re-export it`);
      }
      if (to === 'f16') {
        const h = chunk as Uint16Array;
        const over = h.findIndex((b) => (b & 0x7c00) === 0x7c00);
        if (over >= 0) throw new WeightError(`${where}: tensor '${e.name}' element ${start + over} = ${wide[over]} overflows f16 (max 65504); load the weights as f32`);
      }
      out.write(chunk, start);
    }
  } catch (err) {
    out.dispose();
    throw err;
  }
  return out;
}
