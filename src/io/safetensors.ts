// safetensors reader and writer. Layout: u64 little-endian header length N, N bytes of
// UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`
// (padded with spaces), then the raw little-endian C-contiguous tensor bytes; offsets are
// relative to the first byte after the header. `open` reads and validates only the
// header; tensors are read on demand, and `toTensor` streams one tensor to the GPU in
// bounded chunks so that a multi-GB checkpoint never sits in JS memory.
import { open as openFile, stat, type FileHandle } from 'node:fs/promises';
import type { Runtime } from '../gpu/runtime.js';
import { WeightError } from '../gpu/errors.js';
import { Tensor, numel } from '../tensor/tensor.js';
import { fromHalf, toHalf } from '../tensor/f16.js';
import { withAtomicFile, writeAll } from './atomic.js';
import { fileKind } from './regular_file.js';

export type SafeDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'U8' | 'I8' | 'I16' | 'U16' | 'U32' | 'U64' | 'BOOL';

/** Offsets are relative to the data section (the first byte after the header). */
export interface TensorInfo { name: string; dtype: SafeDType; shape: number[]; begin: number; end: number }

const ITEMSIZE: Record<SafeDType, number> = {
  F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4, F16: 2, BF16: 2, I16: 2, U16: 2, U8: 1, I8: 1, BOOL: 1,
};

/** The reference implementation's cap; a larger length means a corrupt or foreign file. */
const MAX_HEADER_BYTES = 100_000_000;
/** Upper bound of host memory one toTensor chunk uses (source bytes). */
const DEFAULT_CHUNK_BYTES = 16 << 20;

export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly metadata: Record<string, string>,
    readonly tensors: Map<string, TensorInfo>,
    private readonly fh: FileHandle,
    private readonly dataStart: number,
    private readonly chunkBytes: number,
  ) {}

  /** Opens `path` and validates its header. `chunkBytes` bounds toTensor's host buffer. */
  static async open(path: string, opts: { chunkBytes?: number } = {}): Promise<SafetensorsFile> {
    // stat before open: opening a FIFO (or a device) for reading blocks until a writer
    // appears, which is a hang rather than an error.
    const st = await stat(path).catch((err: Error) => {
      throw new WeightError(`cannot open safetensors file ${path}: ${err.message}`);
    });
    if (!st.isFile()) throw new WeightError(`${path} is not a regular file (it is ${fileKind(st)}); expected a .safetensors file`);
    let fh: FileHandle;
    try {
      fh = await openFile(path, 'r');
    } catch (err) {
      throw new WeightError(`cannot open safetensors file ${path}: ${(err as Error).message}`);
    }
    try {
      const size = (await fh.stat()).size;
      if (size < 8) throw new WeightError(`${path}: ${size} bytes is too short for a safetensors file (needs an 8-byte header length)`);
      const lenBuf = Buffer.alloc(8);
      await readExactly(fh, lenBuf, 0, path);
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw new WeightError(`${path}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit; the file is corrupt or not safetensors`);
      }
      const headerLen = Number(n);
      if (8 + headerLen > size) {
        throw new WeightError(`${path}: header length ${headerLen} runs past the end of the ${size}-byte file; the file is truncated or not safetensors`);
      }
      const headerBuf = Buffer.alloc(headerLen);
      await readExactly(fh, headerBuf, 8, path);
      const { metadata, tensors } = parseHeader(headerBuf, path, size - 8 - headerLen);
      const chunkBytes = Math.max(16, opts.chunkBytes ?? DEFAULT_CHUNK_BYTES);
      return new SafetensorsFile(path, metadata, tensors, fh, 8 + headerLen, chunkBytes);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new WeightError(`${this.path}: no tensor named '${name}' (the file has ${this.tensors.size} tensors)`);
    return t;
  }

  /** The tensor's bytes as stored (little-endian), in a fresh buffer. */
  async readRaw(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    const out = new Uint8Array(t.end - t.begin);
    await readExactly(this.fh, out, this.dataStart + t.begin, this.path);
    return out;
  }

  /** Any numeric dtype widened or rounded to float32 on the host. */
  async readF32(name: string): Promise<Float32Array> {
    const t = this.info(name);
    return toFloat32(await this.readRaw(name), t.dtype);
  }

  /** Integer ids (I64 as stored; narrower integer types widened). */
  async readI64(name: string): Promise<BigInt64Array> {
    const t = this.info(name);
    const raw = await this.readRaw(name);
    if (t.dtype === 'I64') return new BigInt64Array(raw.buffer, 0, raw.byteLength / 8);
    if (t.dtype === 'I32' || t.dtype === 'I16' || t.dtype === 'I8' || t.dtype === 'U8' || t.dtype === 'U16' || t.dtype === 'U32') {
      const f = toFloat32Exact(raw, t.dtype);
      return BigInt64Array.from(f, (v) => BigInt(v));
    }
    throw new WeightError(`${this.path}: tensor '${name}' is ${t.dtype}, not an integer type; use readF32`);
  }

  /** Streams a float tensor from disk into a new GPU tensor (f32 or f16), converting on
   *  the way in chunks of at most `chunkBytes` source bytes. `finite` (weights) refuses a
   *  NaN or infinite value, and an f32 value that overflows f16, naming the tensor: such a
   *  weight turns every image black. The scan runs on the host chunk already in memory. */
  async toTensor(
    rt: Runtime, name: string, dtype: 'f32' | 'f16' = 'f32', expectShape?: readonly number[], opts: { finite?: boolean } = {},
  ): Promise<Tensor> {
    const t = this.info(name);
    if (expectShape && (expectShape.length !== t.shape.length || expectShape.some((d, i) => d !== t.shape[i]))) {
      throw new WeightError(`${this.path}: tensor '${name}' has shape [${t.shape.join(',')}], expected [${expectShape.join(',')}]`);
    }
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16' && t.dtype !== 'F64') {
      throw new WeightError(`${this.path}: tensor '${name}' is ${t.dtype}; only F32/F16/BF16/F64 load as float tensors (use readI64 for ids)`);
    }
    const src = ITEMSIZE[t.dtype];
    const n = numel(t.shape);
    // An even element count per chunk keeps every f16 write at a 4-byte-aligned offset,
    // which queue.writeBuffer requires.
    const perChunk = Math.max(2, Math.floor(this.chunkBytes / src / 2) * 2);
    const raw = new Uint8Array(Math.min(n, perChunk) * src);
    // Loaded tensors are weights: sized exactly (gpu/pool.ts).
    const out = Tensor.empty(rt, t.shape, dtype, name, 'exact');
    try {
      for (let start = 0; start < n; start += perChunk) {
        const count = Math.min(perChunk, n - start);
        const bytes = raw.subarray(0, count * src);
        await readExactly(this.fh, bytes, this.dataStart + t.begin + start * src, this.path);
        const chunk = convertChunk(bytes, t.dtype, dtype);
        if (opts.finite) this.checkFinite(t, chunk, dtype, start, bytes);
        out.write(chunk, start);
      }
    } catch (err) {
      out.dispose();
      throw err;
    }
    return out;
  }

  private checkFinite(t: TensorInfo, chunk: ArrayBufferView, dtype: 'f32' | 'f16', start: number, source: Uint8Array): void {
    const bad = firstNonFinite(chunk, dtype);
    if (bad < 0) return;
    const where = `${this.path}: tensor '${t.name}' ${t.dtype}[${t.shape.join(',')}]`;
    const srcValue = toFloat32(source, t.dtype)[bad];
    if (Number.isFinite(srcValue)) {
      throw new WeightError(`${where}: element ${start + bad} = ${srcValue} overflows f16 (max 65504); load the weights as f32`);
    }
    throw new WeightError(`${where}: element ${start + bad} is ${srcValue}; a non-finite weight makes every output NaN (a black image): the file is corrupt, re-download or re-export it`);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

export type WritableDType = 'F32' | 'F16' | 'I64' | 'I32' | 'U8';

export async function writeSafetensors(
  path: string,
  tensors: Record<string, { dtype: WritableDType; shape: number[]; data: ArrayBufferView }>,
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new WeightError(`${path}: '__metadata__' is reserved and cannot name a tensor`);
    const expected = numel(t.shape) * ITEMSIZE[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new WeightError(`${path}: tensor '${name}' ${t.dtype}[${t.shape.join(',')}] needs ${expected} bytes, data has ${t.data.byteLength}`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Padding the header to a multiple of 8 keeps the data section 8-byte aligned.
  const padded = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20);
  padded.set(json);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.byteLength));
  await withAtomicFile(path, async (fh) => {
    await writeAll(fh, len);
    await writeAll(fh, padded);
    for (const [, t] of entries) await writeAll(fh, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  });
}

/** A tensor for writeSafetensorsStreamed: its bytes are produced only when written. */
export interface StreamedTensor {
  name: string;
  dtype: SafeDType;
  shape: number[];
  bytes(): Promise<Uint8Array>;
}

/** writeSafetensors for data that should not all sit in memory at once (converting a
 *  multi-GB checkpoint): the header comes from names, dtypes and shapes, then each
 *  tensor's bytes are fetched, checked against its size and written, one at a time. */
export async function writeSafetensorsStreamed(path: string, tensors: StreamedTensor[], metadata?: Record<string, string>): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new WeightError(`${path}: '__metadata__' is reserved and cannot name a tensor`);
    if (t.name in header) throw new WeightError(`${path}: tensor '${t.name}' is given twice`);
    const bytes = numel(t.shape) * ITEMSIZE[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20);
  padded.set(json);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.byteLength));
  await withAtomicFile(path, async (fh) => {
    await writeAll(fh, len);
    await writeAll(fh, padded);
    for (const t of tensors) {
      const data = await t.bytes();
      const expected = numel(t.shape) * ITEMSIZE[t.dtype];
      if (data.byteLength !== expected) {
        throw new WeightError(`${path}: tensor '${t.name}' ${t.dtype}[${t.shape.join(',')}] needs ${expected} bytes, data has ${data.byteLength}`);
      }
      await writeAll(fh, data);
    }
  });
}

async function readExactly(fh: FileHandle, into: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const { bytesRead } = await fh.read(into, done, into.byteLength - done, position + done);
    if (bytesRead === 0) throw new WeightError(`${path}: unexpected end of file at byte ${position + done}; the file is truncated`);
    done += bytesRead;
  }
}

/** The header rules of the reference reader (huggingface/safetensors `validate`), plus
 *  duplicate keys, which JSON.parse would silently resolve to the last one: the header is
 *  UTF-8 JSON starting with '{' that fills exactly N bytes (trailing spaces are padding),
 *  and the entries, sorted by offset, tile the data section from 0 to its last byte with
 *  no gap, overlap or trailing byte. */
function parseHeader(buf: Buffer, path: string, dataBytes: number): { metadata: Record<string, string>; tensors: Map<string, TensorInfo> } {
  if (buf.length === 0 || buf[0] !== 0x7b) {
    const c = buf[0];
    const found = buf.length === 0 ? 'an empty header' : c === 0x5b ? "'[' (an array)" : c > 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, '0')}`;
    throw new WeightError(`${path}: the header must be a JSON object starting with '{' at byte 8, found ${found}; the file is corrupt or not safetensors`);
  }
  let text: string;
  let doc: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
    doc = JSON.parse(text);
  } catch (err) {
    throw new WeightError(
      `${path}: the ${buf.length}-byte header is not valid UTF-8 JSON ending at byte ${8 + buf.length} (${(err as Error).message}); ` +
        'the header length or the header is corrupt, or the file is not safetensors',
    );
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new WeightError(`${path}: header must be a JSON object of tensor entries, found ${Array.isArray(doc) ? 'an array' : typeof doc}`);
  }
  const dup = duplicateKey(text);
  if (dup) {
    const what = dup.top ? `tensor '${dup.key}'` : `key '${dup.key}' of '${dup.parent}'`;
    throw new WeightError(`${path}: ${what} appears twice in the header (a reader would silently keep one of them); the file is corrupt, re-export it`);
  }
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(doc as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new WeightError(`${path}: __metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw new WeightError(`${path}: __metadata__.${k} must be a string, found ${typeof v}`);
        metadata[k] = v;
      }
      continue;
    }
    tensors.set(name, parseEntry(name, entry, path));
  }
  const byOffset = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let prev: TensorInfo | null = null;
  for (const t of byOffset) {
    if (prev && t.begin < expected) {
      throw new WeightError(`${path}: tensor '${t.name}' bytes [${t.begin}, ${t.end}) overlap '${prev.name}' [${prev.begin}, ${prev.end}); the header is corrupt`);
    }
    if (t.end > dataBytes) {
      throw new WeightError(`${path}: tensor '${t.name}' ends at data byte ${t.end} but the data section has ${dataBytes} bytes; the file is truncated`);
    }
    if (t.begin > expected) {
      const after = prev ? `'${prev.name}' ends at ${expected}` : 'the data section starts at 0';
      throw new WeightError(`${path}: tensor '${t.name}' starts at data byte ${t.begin} but ${after}: a ${t.begin - expected}-byte gap; the header is corrupt`);
    }
    expected = t.end;
    prev = t;
  }
  if (expected !== dataBytes) {
    throw new WeightError(
      `${path}: the tensors cover ${expected} data bytes but the file has ${dataBytes} after the header (${dataBytes - expected} trailing bytes); ` +
        'the header length is wrong or the file has extra bytes appended: re-export it',
    );
  }
  return { metadata, tensors };
}

/** The first key that appears twice in one JSON object of `text` (already valid JSON), with
 *  the key that owns its object (null at the top level). A string token is a key exactly
 *  when the next non-space character is ':'. */
function duplicateKey(text: string): { key: string; parent: string | null; top: boolean } | null {
  const objects: (Set<string> | null)[] = [];
  const owners: (string | null)[] = [];
  let lastKey: string | null = null;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      let escaped = false;
      while (text.charCodeAt(j) !== 0x22) {
        if (text.charCodeAt(j) === 0x5c) {
          escaped = true;
          j++;
        }
        j++;
      }
      let k = j + 1;
      while (k < n && (text.charCodeAt(k) === 0x20 || text.charCodeAt(k) === 0x0a || text.charCodeAt(k) === 0x0d || text.charCodeAt(k) === 0x09)) k++;
      const keys = objects[objects.length - 1];
      if (text.charCodeAt(k) === 0x3a && keys) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (keys.has(key)) return { key, parent: owners[owners.length - 1], top: objects.length === 1 };
        keys.add(key);
        lastKey = key;
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      // The key just read owns this object or array (null at the top or inside an array).
      owners.push(objects.length === 0 ? null : lastKey);
      objects.push(c === 0x7b ? new Set<string>() : null);
      lastKey = null;
    } else if (c === 0x7d || c === 0x5d) {
      objects.pop();
      owners.pop();
    }
  }
  return null;
}

function parseEntry(name: string, entry: unknown, path: string): TensorInfo {
  const where = `${path}: tensor '${name}'`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new WeightError(`${where}: entry must be an object with dtype, shape and data_offsets`);
  const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (e.dtype === undefined) throw new WeightError(`${where}: entry has no dtype`);
  if (e.shape === undefined) throw new WeightError(`${where}: entry has no shape`);
  if (e.data_offsets === undefined) throw new WeightError(`${where}: entry has no data_offsets`);
  if (typeof e.dtype !== 'string' || !(e.dtype in ITEMSIZE)) {
    throw new WeightError(`${where}: unknown dtype ${JSON.stringify(e.dtype)} (expected one of ${Object.keys(ITEMSIZE).join(', ')})`);
  }
  const dtype = e.dtype as SafeDType;
  const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!Array.isArray(e.shape) || !e.shape.every(isIndex)) throw new WeightError(`${where}: shape must be an array of non-negative integers, found ${JSON.stringify(e.shape)}`);
  const off = e.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every(isIndex)) {
    throw new WeightError(`${where}: data_offsets must be [begin, end] non-negative integers, found ${JSON.stringify(off)}`);
  }
  const [begin, end] = off as number[];
  if (end < begin) throw new WeightError(`${where}: data_offsets [${begin}, ${end}] are out of order (end before begin)`);
  const shape = e.shape as number[];
  const expected = numel(shape) * ITEMSIZE[dtype];
  if (end - begin !== expected) {
    throw new WeightError(`${where}: ${dtype}[${shape.join(',')}] needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
  }
  return { name, dtype, shape, begin, end };
}

/** `raw` starts at offset 0 of its own buffer, so typed views over it are aligned. */
function toFloat32(raw: Uint8Array, dtype: SafeDType): Float32Array {
  const n = raw.byteLength / ITEMSIZE[dtype];
  switch (dtype) {
    case 'F32': return new Float32Array(raw.buffer, raw.byteOffset, n);
    case 'F16': {
      const h = new Uint16Array(raw.buffer, raw.byteOffset, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = fromHalf(h[i]);
      return out;
    }
    case 'BF16': {
      const h = new Uint16Array(raw.buffer, raw.byteOffset, n);
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = h[i] << 16;
      return new Float32Array(bits.buffer);
    }
    case 'F64': return Float32Array.from(new Float64Array(raw.buffer, raw.byteOffset, n));
    case 'I64': return Float32Array.from(new BigInt64Array(raw.buffer, raw.byteOffset, n), (v) => Number(v));
    case 'U64': return Float32Array.from(new BigUint64Array(raw.buffer, raw.byteOffset, n), (v) => Number(v));
    default: return toFloat32Exact(raw, dtype);
  }
}

/** Integer types of at most 32 bits (and BOOL) through a float64 array: exact. */
function toFloat32Exact(raw: Uint8Array, dtype: SafeDType): Float32Array {
  const n = raw.byteLength / ITEMSIZE[dtype];
  const b = raw.buffer;
  const o = raw.byteOffset;
  const views: Partial<Record<SafeDType, () => ArrayLike<number>>> = {
    I32: () => new Int32Array(b, o, n), U32: () => new Uint32Array(b, o, n), I16: () => new Int16Array(b, o, n),
    U16: () => new Uint16Array(b, o, n), I8: () => new Int8Array(b, o, n), U8: () => raw, BOOL: () => raw,
  };
  const view = views[dtype];
  if (!view) throw new WeightError(`no integer conversion for ${dtype}`);
  return Float32Array.from(view());
}

/** Index of the first NaN or infinite element of a converted chunk, or -1. */
function firstNonFinite(chunk: ArrayBufferView, dtype: 'f32' | 'f16'): number {
  if (dtype === 'f16') {
    const h = new Uint16Array(chunk.buffer, chunk.byteOffset, chunk.byteLength / 2);
    for (let i = 0; i < h.length; i++) if ((h[i] & 0x7c00) === 0x7c00) return i;
    return -1;
  }
  const f = new Float32Array(chunk.buffer, chunk.byteOffset, chunk.byteLength / 4);
  // x - x is 0 for every finite x and NaN for NaN and +-Infinity.
  for (let i = 0; i < f.length; i++) if (f[i] - f[i] !== 0) return i;
  return -1;
}

/** One chunk of source bytes in the target's element type, ready for Tensor.write. */
function convertChunk(bytes: Uint8Array, from: SafeDType, to: 'f32' | 'f16'): ArrayBufferView {
  if ((from === 'F32' && to === 'f32') || (from === 'F16' && to === 'f16')) return bytes;
  const f = toFloat32(bytes, from);
  if (to === 'f32') return f;
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = toHalf(f[i]);
  return out;
}
