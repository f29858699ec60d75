// Tensors of a torch.save file, read lazily: a storage (one archive member, or one
// stretch of a legacy file) plus torch's view geometry (storage offset, sizes, strides in
// elements). Reading materialises the view contiguously in row-major order; contiguous
// views stream straight from the file in chunks.
import { WeightError } from '../gpu/errors.js';
import { fromHalf, toHalf } from '../tensor/f16.js';

/** torch dtype names (str(torch.float32) without the 'torch.' prefix). */
export type TorchDType =
  | 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8'
  | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'bool' | 'complex64' | 'complex128';

export const ITEMSIZE: Record<TorchDType, number> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1,
  uint8: 1, uint16: 2, uint32: 4, uint64: 8, bool: 1, complex64: 8, complex128: 16,
};

export const FLOAT_DTYPES: ReadonlySet<TorchDType> = new Set(['float32', 'float64', 'float16', 'bfloat16']);

/** Where a storage's bytes live; `read` returns a fresh buffer. */
export interface ByteSource {
  readonly byteLength: number;
  read(byteOffset: number, byteLength: number): Promise<Uint8Array>;
}

/** A typed storage: `numel` elements of `dtype` starting `elementOffset` elements into
 *  `bytes` (non-zero only for legacy storage views). */
export class TorchStorage {
  constructor(
    readonly key: string,
    readonly dtype: TorchDType,
    readonly numel: number,
    readonly bytes: () => ByteSource,
    readonly elementOffset = 0,
  ) {}

  toString(): string {
    return `storage '${this.key}' (${this.dtype}, ${this.numel} elements)`;
  }
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** torch.Tensor.is_contiguous(): row-major strides, ignoring size-1 dims; empty tensors are. */
export function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  if (numelOf(shape) === 0) return true;
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 1) continue;
    if (stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

export class LazyTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly storageOffset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
    readonly requiresGrad: boolean,
    /** Names the file in errors. */
    readonly where: string,
  ) {
    if (shape.length !== stride.length) {
      throw new WeightError(`${where}: tensor with sizes [${shape.join(',')}] has strides [${stride.join(',')}] of another rank; the file is corrupt`);
    }
    if (this.numel > 0) {
      const last = storageOffset + shape.reduce((s, n, i) => s + (n - 1) * stride[i], 0);
      if (last >= storage.numel) {
        throw new WeightError(`${where}: tensor [${shape.join(',')}] at offset ${storageOffset} with strides [${stride.join(',')}] reaches element ${last} of ${storage}; the file is corrupt`);
      }
    }
  }

  get dtype(): TorchDType {
    return this.storage.dtype;
  }

  get numel(): number {
    return numelOf(this.shape);
  }

  get contiguous(): boolean {
    return isContiguous(this.shape, this.stride);
  }

  toString(): string {
    return `tensor ${this.dtype}[${this.shape.join(',')}]`;
  }

  /** Elements [start, start + count) of the contiguous tensor's bytes; contiguous tensors only. */
  async readRange(start: number, count: number): Promise<Uint8Array> {
    if (!this.contiguous) throw new WeightError(`${this.where}: readRange needs a contiguous tensor; use readBytes`);
    const size = ITEMSIZE[this.dtype];
    const first = this.storage.elementOffset + this.storageOffset + start;
    return this.storage.bytes().read(first * size, count * size);
  }

  /** Every element in row-major order, as little-endian bytes of `dtype`. */
  async readBytes(): Promise<Uint8Array> {
    const n = this.numel;
    if (n === 0) return new Uint8Array(0);
    if (this.contiguous) return this.readRange(0, n);
    // Read the storage span the view touches, then gather element by element.
    const size = ITEMSIZE[this.dtype];
    const extent = this.shape.reduce((s, d, i) => s + (d - 1) * this.stride[i], 0) + 1;
    const span = await this.storage.bytes().read((this.storage.elementOffset + this.storageOffset) * size, extent * size);
    const out = new Uint8Array(n * size);
    const rank = this.shape.length;
    const idx = new Array<number>(rank).fill(0);
    let src = 0;
    for (let i = 0; i < n; i++) {
      out.set(span.subarray(src * size, src * size + size), i * size);
      for (let d = rank - 1; d >= 0; d--) {
        idx[d]++;
        src += this.stride[d];
        if (idx[d] < this.shape[d]) break;
        src -= this.stride[d] * this.shape[d];
        idx[d] = 0;
      }
    }
    return out;
  }

  async readF32(): Promise<Float32Array> {
    return bytesToF32(await this.readBytes(), this.dtype, this.where);
  }

  /** Exact for every dtype except 64-bit integers beyond 2^53. */
  async readF64(): Promise<Float64Array> {
    return bytesToF64(await this.readBytes(), this.dtype, this.where);
  }
}

/** A typed view of `bytes`, copying first if the offset is not aligned for the element. */
function aligned(bytes: Uint8Array, size: number): { buffer: ArrayBufferLike; offset: number; n: number } {
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return { buffer: b.buffer, offset: b.byteOffset, n: b.byteLength / size };
}

export function bytesToF64(bytes: Uint8Array, dtype: TorchDType, where: string): Float64Array {
  const { buffer, offset, n } = aligned(bytes, ITEMSIZE[dtype]);
  switch (dtype) {
    case 'float64': return new Float64Array(buffer.slice(offset, offset + n * 8));
    case 'float32': return Float64Array.from(new Float32Array(buffer, offset, n));
    case 'float16': return Float64Array.from(new Uint16Array(buffer, offset, n), fromHalf);
    case 'bfloat16': return Float64Array.from(bf16ToF32(new Uint16Array(buffer, offset, n)));
    case 'int64': return Float64Array.from(new BigInt64Array(buffer, offset, n), Number);
    case 'uint64': return Float64Array.from(new BigUint64Array(buffer, offset, n), Number);
    case 'int32': return Float64Array.from(new Int32Array(buffer, offset, n));
    case 'uint32': return Float64Array.from(new Uint32Array(buffer, offset, n));
    case 'int16': return Float64Array.from(new Int16Array(buffer, offset, n));
    case 'uint16': return Float64Array.from(new Uint16Array(buffer, offset, n));
    case 'int8': return Float64Array.from(new Int8Array(buffer, offset, n));
    case 'uint8': case 'bool': return Float64Array.from(new Uint8Array(buffer, offset, n));
    default: throw new WeightError(`${where}: ${dtype} tensors have no real-valued reading`);
  }
}

export function bytesToF32(bytes: Uint8Array, dtype: TorchDType, where: string): Float32Array {
  const { buffer, offset, n } = aligned(bytes, ITEMSIZE[dtype]);
  if (dtype === 'float32') return new Float32Array(buffer, offset, n);
  if (dtype === 'bfloat16') return bf16ToF32(new Uint16Array(buffer, offset, n));
  if (dtype === 'float16') return Float32Array.from(new Uint16Array(buffer, offset, n), fromHalf);
  return Float32Array.from(bytesToF64(bytes, dtype, where));
}

/** bfloat16 is the top half of a float32: widening is a shift, exact. */
function bf16ToF32(h: Uint16Array): Float32Array {
  const bits = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
  return new Float32Array(bits.buffer);
}

/** Float data as f16 bits (round to nearest even); `overflow` counts finite values that became inf. */
export function bytesToF16(bytes: Uint8Array, dtype: TorchDType, where: string): { bits: Uint16Array; overflow: number } {
  if (dtype === 'float16') {
    const { buffer, offset, n } = aligned(bytes, 2);
    return { bits: new Uint16Array(buffer, offset, n), overflow: 0 };
  }
  const f = bytesToF32(bytes, dtype, where);
  const bits = new Uint16Array(f.length);
  let overflow = 0;
  for (let i = 0; i < f.length; i++) {
    bits[i] = toHalf(f[i]);
    if ((bits[i] & 0x7fff) === 0x7c00 && Number.isFinite(f[i])) overflow++;
  }
  return { bits, overflow };
}
