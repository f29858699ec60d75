// torch.save files without Python. Two layouts (torch/serialization.py):
//  - zip (torch >= 1.6): `<name>/data.pkl`, whose persistent ids
//    ('storage', <torch.XStorage>, key, location, numel) name members `<name>/data/<key>`;
//  - legacy: five pickles in a row (magic number, protocol 1001, sys info, the object with
//    ids ('storage', type, key, location, numel, view), the sorted storage keys), then per
//    key an 8-byte element count and the raw little-endian elements.
// The object pickle runs on a data-only machine (pickle.ts) whose globals come from the
// allowlist below: what torch.save itself writes, plus a few inert names real Lightning
// checkpoints carry. Anything else is refused by name before anything is built.
import type { FileHandle } from 'node:fs/promises';
import { PickleUnderrun, PyDict, PySet, TorchPickleError, describe, isTuple, unpickle, type PickleHooks, type PyBuildable, type PyCallable } from './pickle.js';
import { ITEMSIZE, LazyTensor, TorchStorage, type ByteSource, type TorchDType } from './torch_tensor.js';
import { ZipReader, openRegularFile, readAt } from './zip.js';

export interface TorchFile {
  path: string;
  format: 'zip' | 'legacy';
  /** The saved object: PyDict / arrays / scalars, with LazyTensor leaves. */
  root: unknown;
  close(): Promise<void>;
}

const STORAGE_DTYPES: Record<string, TorchDType> = {
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8', ByteStorage: 'uint8',
  BoolStorage: 'bool', ComplexFloatStorage: 'complex64', ComplexDoubleStorage: 'complex128',
};
const DTYPE_ALIASES: Record<string, TorchDType> = {
  float32: 'float32', float: 'float32', float64: 'float64', double: 'float64', float16: 'float16', half: 'float16',
  bfloat16: 'bfloat16', int64: 'int64', long: 'int64', int32: 'int32', int: 'int32', int16: 'int16', short: 'int16',
  int8: 'int8', uint8: 'uint8', bool: 'bool', complex64: 'complex64', cfloat: 'complex64', complex128: 'complex128', cdouble: 'complex128',
};
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001n;
const REFUSAL = 'torch_pickle only reconstructs tensors and plain values; nothing is executed';

/** A global from the allowlist; `fn` null means it may only appear as a value (a type). */
export class PyGlobal implements PyCallable {
  constructor(readonly module: string, readonly name: string, private readonly fn: ((args: readonly unknown[]) => unknown) | null, private readonly where: string, readonly dtype?: TorchDType) {}
  call(args: readonly unknown[]): unknown {
    if (!this.fn) throw new TorchPickleError(`${this.where}: ${this} may appear only as a type here, not be constructed; ${REFUSAL}`);
    return this.fn(args);
  }
  toString(): string {
    return `${this.module}.${this.name}`;
  }
}

/** torch.float32 and friends, as values. */
export class TorchDTypeValue {
  constructor(readonly dtype: TorchDType) {}
  toString(): string {
    return `torch.${this.dtype}`;
  }
}

/** numpy.dtype(...) as numpy pickles it: kept to decode numpy scalars. */
class NumpyDType implements PyBuildable {
  littleEndian = true;
  constructor(readonly code: string) {}
  setState(state: unknown): void {
    if (isTuple(state) && typeof state[1] === 'string') this.littleEndian = state[1] !== '>';
  }
  toString(): string {
    return `numpy.dtype('${this.code}')`;
  }
}

function int(v: unknown, what: string, where: string): number {
  if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  throw new TorchPickleError(`${where}: ${what} must be an integer, found ${describe(v)}`);
}

function ints(v: unknown, what: string, where: string): number[] {
  if (!Array.isArray(v)) throw new TorchPickleError(`${where}: ${what} must be a tuple of integers, found ${describe(v)}`);
  return v.map((x) => {
    const n = int(x, what, where);
    if (n < 0) throw new TorchPickleError(`${where}: ${what} has a negative entry ${n}`);
    return n;
  });
}

function tensorArg(v: unknown, what: string, where: string): LazyTensor {
  if (v instanceof LazyTensor) return v;
  throw new TorchPickleError(`${where}: ${what} expects a tensor, found ${describe(v)}`);
}

function rebuild(where: string, args: readonly unknown[]): LazyTensor {
  const [storage, offset, size, stride, requiresGrad] = args;
  if (!(storage instanceof TorchStorage)) throw new TorchPickleError(`${where}: _rebuild_tensor expects a storage, found ${describe(storage)}`);
  const off = int(offset, 'storage_offset', where);
  if (off < 0) throw new TorchPickleError(`${where}: negative storage_offset ${off}`);
  return new LazyTensor(storage, off, ints(size, 'size', where), ints(stride, 'stride', where), requiresGrad === true, where);
}

function numpyScalar(where: string, args: readonly unknown[]): unknown {
  const [dt, raw] = args;
  if (!(dt instanceof NumpyDType) || !(raw instanceof Uint8Array)) throw new TorchPickleError(`${where}: numpy scalar expects (dtype, bytes)`);
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const le = dt.littleEndian;
  const read: Record<string, () => unknown> = {
    f8: () => v.getFloat64(0, le), f4: () => v.getFloat32(0, le), i8: () => v.getBigInt64(0, le), u8: () => v.getBigUint64(0, le),
    i4: () => BigInt(v.getInt32(0, le)), u4: () => BigInt(v.getUint32(0, le)), i2: () => BigInt(v.getInt16(0, le)),
    u2: () => BigInt(v.getUint16(0, le)), i1: () => BigInt(v.getInt8(0)), u1: () => BigInt(v.getUint8(0)), b1: () => v.getUint8(0) !== 0,
  };
  const f = read[dt.code];
  if (!f || raw.byteLength < Number(dt.code.slice(1))) throw new TorchPickleError(`${where}: numpy scalars of dtype '${dt.code}' are not supported`);
  return f();
}

/** The allowlist. `module.name` -> constructor (or null: a type that is only referenced). */
function allowed(where: string, module: string, name: string): PyGlobal | TorchDTypeValue | null {
  const g = (fn: ((args: readonly unknown[]) => unknown) | null, dtype?: TorchDType) => new PyGlobal(module, name, fn, where, dtype);
  const qual = `${module}.${name}`;
  switch (qual) {
    case 'collections.OrderedDict': return g((args) => {
      const d = new PyDict(qual);
      if (Array.isArray(args[0])) for (const kv of args[0]) if (Array.isArray(kv) && kv.length === 2) d.items.set(kv[0], kv[1]);
      return d;
    });
    case 'torch._utils._rebuild_tensor':
    case 'torch._utils._rebuild_tensor_v2': return g((args) => rebuild(where, args));
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state': return g((args) => {
      const t = tensorArg(args[0], qual, where);
      return new LazyTensor(t.storage, t.storageOffset, t.shape, t.stride, args[1] === true, where);
    });
    case 'torch._tensor._rebuild_from_type_v2': return g((args) => {
      // (func, new_type, args, state): torch.Tensor or Parameter rebuilt by an allowed func.
      const [fn, type, inner] = args;
      if (!(type instanceof PyGlobal) || !['torch.Tensor', 'torch.nn.parameter.Parameter'].includes(String(type))) {
        throw new TorchPickleError(`${where}: tensor subclass ${describe(type)} is not supported; ${REFUSAL}`);
      }
      if (!(fn instanceof PyGlobal) || !Array.isArray(inner)) throw new TorchPickleError(`${where}: ${qual} expects (function, type, args, state)`);
      return tensorArg(fn.call(inner), qual, where);
    });
    case 'torch.Tensor':
    case 'torch.nn.parameter.Parameter': return g(null);
    case 'torch.Size': return g((args) => Object.freeze(ints(args[0] ?? [], 'torch.Size', where).map(BigInt)));
    case 'torch.storage.UntypedStorage':
    case 'torch.storage._UntypedStorage':
    case 'torch.UntypedStorage': return g(null, 'uint8');
    // Lightning 1.4 (SD v1 .ckpt) keys its `callbacks` dict by the callback class itself.
    case 'pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint':
    case 'pytorch_lightning.callbacks.early_stopping.EarlyStopping': return g(null);
    // Protocol 2 pickles Python 3 bytes as _codecs.encode(text, 'latin1').
    case '_codecs.encode': return g((args) => {
      if (typeof args[0] !== 'string' || !['latin1', 'latin-1'].includes(String(args[1]))) throw new TorchPickleError(`${where}: _codecs.encode is accepted only for latin1 bytes`);
      return Uint8Array.from(args[0], (c) => c.charCodeAt(0));
    });
    case 'builtins.set':
    case '__builtin__.set': return g((args) => {
      const s = new PySet(false);
      if (Array.isArray(args[0])) for (const x of args[0]) s.items.add(x);
      return s;
    });
    case 'numpy.dtype': return g((args) => new NumpyDType(String(args[0])));
    case 'numpy.core.multiarray.scalar':
    case 'numpy._core.multiarray.scalar': return g((args) => numpyScalar(where, args));
  }
  if (module === 'torch' && name in STORAGE_DTYPES) return g(null, STORAGE_DTYPES[name]);
  if (module === 'torch' && name in DTYPE_ALIASES) return new TorchDTypeValue(DTYPE_ALIASES[name]);
  return null;
}

function refuse(where: string, module: string, name: string): never {
  // os.system pickles as posix.system (nt.system on Windows): say both names.
  const alias = module === 'posix' || module === 'nt' ? ` (os.${name})` : '';
  throw new TorchPickleError(`refusing global ${module}.${name}${alias} in ${where}: ${REFUSAL}`);
}

function hooksFor(where: string, persistentLoad: (pid: readonly unknown[]) => unknown): PickleHooks {
  return {
    findClass: (module, name) => allowed(where, module, name) ?? refuse(where, module, name),
    persistentLoad: (pid) => {
      if (!isTuple(pid) || pid.length === 0) throw new TorchPickleError(`${where}: persistent id ${describe(pid)} is not a tuple`);
      if (pid[0] === 'module') throw new TorchPickleError(`${where}: the file pickles a whole nn.Module (torch.save(model)); only state dicts and plain objects can be read: save model.state_dict() instead`);
      if (pid[0] !== 'storage') throw new TorchPickleError(`${where}: unknown persistent id kind ${describe(pid[0])}`);
      return persistentLoad(pid);
    },
  };
}

function storageDType(t: unknown, where: string): TorchDType {
  if (t instanceof PyGlobal && t.dtype) return t.dtype;
  throw new TorchPickleError(`${where}: persistent id names storage type ${describe(t)}, not a torch storage class`);
}

/** Opens a torch.save file (zip or legacy) and rebuilds its object with lazy tensors. */
export async function readTorchFile(path: string): Promise<TorchFile> {
  const fh = await openRegularFile(path);
  let kind: string;
  let size: number;
  try {
    size = (await fh.stat()).size;
    const head = new Uint8Array(Math.min(size, 264));
    await readAt(fh, head, 0, path);
    kind = sniff(head);
  } catch (err) {
    await fh.close();
    throw err;
  }
  if (kind === 'legacy') return readLegacy(fh, size, path);
  await fh.close();
  if (kind === 'zip') return readZip(path);
  if (kind === 'safetensors') throw new TorchPickleError(`${path} is a safetensors file, not a torch.save file: open it with SafetensorsFile or loadCheckpoint`);
  throw new TorchPickleError(`${path} ${kind}`);
}

/** 'zip' | 'legacy' | 'safetensors', or a sentence saying what the file is not. */
export function sniff(head: Uint8Array): string {
  if (head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5)) return 'zip';
  if (head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return 'legacy';
  if (head.length > 8 && head[8] === 0x7b) return 'safetensors';
  if (head.length >= 262 && String.fromCharCode(...head.subarray(257, 262)) === 'ustar') {
    return 'is a tar archive (torch.save before 0.4): load and re-save it with a newer torch first';
  }
  return 'is not a torch.save file (no ZIP header and no pickle header)';
}

async function readZip(path: string): Promise<TorchFile> {
  const zip = await ZipReader.open(path);
  try {
    const pkls = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkls.length !== 1) {
      const what = pkls.length ? `${pkls.length} of them (${pkls.join(', ')})` : 'none (TorchScript archives and other zips are not torch.save checkpoints)';
      throw new TorchPickleError(`${path}: a torch.save archive holds exactly one <name>/data.pkl; found ${what}`);
    }
    const prefix = pkls[0].slice(0, -'data.pkl'.length);
    const order = zip.entries.get(`${prefix}byteorder`);
    if (order && new TextDecoder().decode(await zip.read(order.name)).trim() !== 'little') {
      throw new TorchPickleError(`${path}: big-endian archives are not supported`);
    }
    const where = `${path} (${pkls[0]})`;
    const sources = new Map<string, ByteSource>();
    const hooks = hooksFor(where, (pid) => {
      if (pid.length !== 5) throw new TorchPickleError(`${where}: storage persistent id has ${pid.length} fields, expected 5`);
      const [, type, key, , numelV] = pid;
      const dtype = storageDType(type, where);
      if (typeof key !== 'string') throw new TorchPickleError(`${where}: storage key ${describe(key)} is not a string`);
      const numel = int(numelV, 'storage size', where);
      const member = `${prefix}data/${key}`;
      const entry = zip.entries.get(member);
      if (!entry) throw new TorchPickleError(`${where}: storage '${key}' has no member ${member}; the file is truncated or corrupt`);
      if (entry.size < numel * ITEMSIZE[dtype]) {
        throw new TorchPickleError(`${where}: member ${member} has ${entry.size} bytes, storage '${key}' needs ${numel} x ${ITEMSIZE[dtype]}; the file is corrupt`);
      }
      if (!sources.has(key)) sources.set(key, { byteLength: entry.size, read: (o, n) => zip.readRange(member, o, n) });
      const source = sources.get(key) as ByteSource;
      return new TorchStorage(key, dtype, numel, () => source);
    });
    const data = await zip.read(pkls[0]);
    const root = runPickle(data, 0, hooks, where).value;
    return { path, format: 'zip', root, close: () => zip.close() };
  } catch (err) {
    await zip.close();
    throw err;
  }
}

function runPickle(data: Uint8Array, start: number, hooks: PickleHooks, where: string): { value: unknown; end: number } {
  try {
    return unpickle(data, start, hooks, where);
  } catch (err) {
    if (err instanceof PickleUnderrun) throw new TorchPickleError(`${where}: the pickle ends early (${err.message}); the file is truncated or corrupt`);
    throw err;
  }
}

interface LegacyRoot { dtype: TorchDType; numel: number; source: ByteSource | null }

async function readLegacy(fh: FileHandle, size: number, path: string): Promise<TorchFile> {
  try {
    let win = new Uint8Array(0);
    let winStart = 0;
    // Pickles are read from a window of the file that doubles until the pickle fits.
    const load = async (pos: number, hooks: PickleHooks, what: string) => {
      let want = Math.min(size - pos, 1 << 20);
      for (;;) {
        if (pos < winStart || pos + want > winStart + win.length) {
          win = new Uint8Array(want);
          await readAt(fh, win, pos, path);
          winStart = pos;
        }
        try {
          const r = unpickle(win, pos - winStart, hooks, `${path} (${what})`);
          return { value: r.value, end: winStart + r.end };
        } catch (err) {
          if (!(err instanceof PickleUnderrun)) throw err;
          if (winStart + win.length >= size) throw new TorchPickleError(`${path}: the file ends inside its ${what} pickle (${size} bytes); the file is truncated`);
          want = Math.min(size - pos, want * 2);
        }
      }
    };
    const plain = hooksFor(path, () => {
      throw new TorchPickleError(`${path}: storage reference outside the object pickle; the file is corrupt`);
    });
    const magic = await load(0, plain, 'magic number');
    if (magic.value !== LEGACY_MAGIC) throw new TorchPickleError(`${path}: starts with a pickle but not torch's magic number; not a torch.save file`);
    const proto = await load(magic.end, plain, 'protocol');
    if (proto.value !== LEGACY_PROTOCOL) throw new TorchPickleError(`${path}: legacy protocol ${describe(proto.value)} is not supported (expected 1001)`);
    const sys = await load(proto.end, plain, 'sys info');
    if (sys.value instanceof PyDict && sys.value.get('little_endian') === false) throw new TorchPickleError(`${path}: big-endian checkpoints are not supported`);
    const roots = new Map<string, LegacyRoot>();
    const where = `${path} (object pickle)`;
    const hooks = hooksFor(where, (pid) => {
      if (pid.length !== 6) throw new TorchPickleError(`${where}: storage persistent id has ${pid.length} fields, expected 6`);
      const [, type, key, , numelV, view] = pid;
      const dtype = storageDType(type, where);
      if (typeof key !== 'string') throw new TorchPickleError(`${where}: storage key ${describe(key)} is not a string`);
      const numel = int(numelV, 'storage size', where);
      let root = roots.get(key);
      if (!root) roots.set(key, (root = { dtype, numel, source: null }));
      const r = root;
      const bytes = () => {
        if (!r.source) throw new TorchPickleError(`${path}: storage '${key}' has no data`);
        return r.source;
      };
      if (view === null) return new TorchStorage(key, dtype, numel, bytes);
      // Old files: (view_key, offset, view_size), a slice of the root storage.
      if (!isTuple(view) || view.length !== 3) throw new TorchPickleError(`${where}: storage view metadata ${describe(view)} is not (key, offset, size)`);
      const offset = int(view[1], 'view offset', where);
      const viewSize = int(view[2], 'view size', where);
      if (offset + viewSize > numel) throw new TorchPickleError(`${where}: storage view [${offset}, ${offset + viewSize}) exceeds storage '${key}' of ${numel}`);
      return new TorchStorage(key, dtype, viewSize, bytes, offset);
    });
    const main = await load(sys.end, hooks, 'object');
    const keys = await load(main.end, plain, 'storage keys');
    if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) throw new TorchPickleError(`${path}: storage key list is ${describe(keys.value)}, not a list of strings`);
    let p = keys.end;
    const count = Buffer.alloc(8);
    for (const key of keys.value as string[]) {
      const root = roots.get(key);
      if (!root) throw new TorchPickleError(`${path}: storage key '${key}' is listed but no tensor uses it; the file is corrupt`);
      if (p + 8 > size) throw new TorchPickleError(`${path}: the file ends before storage '${key}' (byte ${p} of ${size}); the file is truncated`);
      await readAt(fh, count, p, path);
      const n = Number(count.readBigUInt64LE(0));
      if (n !== root.numel) throw new TorchPickleError(`${path}: storage '${key}' holds ${n} elements, its tensors say ${root.numel}; the file is corrupt`);
      const start = p + 8;
      const byteLength = n * ITEMSIZE[root.dtype];
      p = start + byteLength;
      if (p > size) throw new TorchPickleError(`${path}: storage '${key}' needs bytes up to ${p} but the file has ${size}; the file is truncated`);
      root.source = {
        byteLength,
        read: async (o, len) => {
          if (o < 0 || o + len > byteLength) throw new TorchPickleError(`${path}: read [${o}, ${o + len}) outside storage '${key}' (${byteLength} bytes)`);
          const out = new Uint8Array(len);
          await readAt(fh, out, start + o, path);
          return out;
        },
      };
    }
    for (const [key, root] of roots) if (!root.source) throw new TorchPickleError(`${path}: storage '${key}' is used but missing from the storage list; the file is corrupt`);
    return { path, format: 'legacy', root: main.value, close: () => fh.close() };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** Every leaf of a rebuilt object with its dotted path (dict keys and list indices
 *  joined by '.'): tensors, scalars, strings, bytes, None, opaque values. */
export function* leaves(value: unknown, path = ''): Generator<[string, unknown]> {
  // Non-string keys print as Python would name them (ints, a class as module.name).
  const join = (k: unknown) => (path ? `${path}.${String(k)}` : String(k));
  if (value instanceof PyDict) {
    for (const [k, v] of value.items) yield* leaves(v, join(k));
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) yield* leaves(value[i], join(i));
  } else if (value instanceof PySet) {
    let i = 0;
    for (const v of value.items) yield* leaves(v, join(i++));
  } else {
    yield [path, value];
  }
}

/** The weights of a checkpoint: a Lightning checkpoint's `state_dict`, else the whole object. */
export function stateDictOf(root: unknown): unknown {
  if (root instanceof PyDict && root.get('state_dict') instanceof PyDict) return root.get('state_dict');
  return root;
}
