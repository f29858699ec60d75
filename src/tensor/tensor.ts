// Tensor: a shape, an element type and GPU storage from the runtime's pool. Reshapes
// share storage (reference counted); storage returns to the pool when the last view is
// disposed. Tensors created inside `scope()` are disposed when it ends unless returned.
import type { Runtime } from '../gpu/runtime.js';
import type { PooledBuffer } from '../gpu/pool.js';
import type { BufferBinding } from '../gpu/recorder.js';
import { ShapeError, EngineError } from '../gpu/errors.js';
import { f16ToF32Array, f32ToF16Array } from './f16.js';
import { track } from './scope.js';

export type DType = 'f32' | 'f16' | 'i32' | 'u32';

export const BYTES: Record<DType, number> = { f32: 4, f16: 2, i32: 4, u32: 4 };

class Storage {
  refs = 1;
  constructor(readonly rt: Runtime, readonly pb: PooledBuffer) {}
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: readonly number[], what: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${what}: invalid shape [${shape.join(',')}]`);
  }
}

export class Tensor {
  private disposed = false;

  private constructor(
    readonly rt: Runtime,
    readonly shape: readonly number[],
    readonly dtype: DType,
    private storage: Storage,
  ) {
    track(this);
  }

  /** An uninitialised tensor (contents are whatever the pooled buffer held). `fit`
   *  'exact' skips the pool's size buckets: for weights, which live as long as the model. */
  static empty(rt: Runtime, shape: readonly number[], dtype: DType = 'f32', label = 'tensor', fit: 'bucket' | 'exact' = 'bucket'): Tensor {
    checkShape(shape, label);
    const bytes = Math.max(4, Math.ceil((numel(shape) * BYTES[dtype]) / 4) * 4);
    const t = new Tensor(rt, [...shape], dtype, new Storage(rt, rt.pool.acquire(bytes, label, fit)));
    if (rt.poison) t.fillBits(dtype === 'f16' ? 0x7e007e00 : 0x7fc00000);
    return t;
  }

  /** Writes a 32-bit pattern over the whole storage, in stream order (no host sync).
   *  Storage bigger than the binding limit is filled in aligned ranges. */
  fillBits(bits: number): void {
    const words = Math.ceil(this.bytes / 4);
    const maxWords = Math.floor(this.rt.limits.maxStorageBufferBindingSize / 256) * 64;
    for (let start = 0; start < words; start += maxWords) {
      const n = Math.min(maxWords, words - start);
      this.rt.dispatch(
        { family: 'fill', entry: 'fill_forward', overrides: { WG: 256 } },
        { params: [n, bits >>> 0], bindings: [this.range(start * 4, n * 4)], workgroups: Math.ceil(n / 256), label: 'fill' },
      );
    }
  }

  /** Sets every element to zero (f32/f16/i32/u32 all have all-zero bits for 0). */
  zero(): this {
    this.fillBits(0);
    return this;
  }

  /** Uploads host data. f16 tensors accept float data and convert it. */
  static from(
    rt: Runtime,
    data: ArrayLike<number> | Float32Array | Int32Array | Uint32Array | Uint16Array,
    shape: readonly number[],
    dtype: DType = 'f32',
    label = 'tensor',
  ): Tensor {
    const n = numel(shape);
    if (data.length !== n) throw new ShapeError(`${label}: ${data.length} values do not fill shape [${shape.join(',')}] (${n})`);
    const t = Tensor.empty(rt, shape, dtype, label);
    let view: ArrayBufferView;
    if (dtype === 'f32') view = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    else if (dtype === 'f16') view = data instanceof Uint16Array ? data : f32ToF16Array(data as ArrayLike<number>);
    else if (dtype === 'i32') view = data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
    else view = data instanceof Uint32Array ? data : Uint32Array.from(data as ArrayLike<number>);
    t.write(view);
    return t;
  }

  static zeros(rt: Runtime, shape: readonly number[], dtype: DType = 'f32', label = 'zeros'): Tensor {
    return Tensor.empty(rt, shape, dtype, label).zero();
  }

  get size(): number {
    return numel(this.shape);
  }

  get bytes(): number {
    return this.size * BYTES[this.dtype];
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** The whole tensor as a storage binding. */
  get binding(): BufferBinding {
    this.assertLive();
    return { buffer: this.storage.pb.buffer, offset: 0, size: Math.max(4, Math.ceil(this.bytes / 4) * 4), pooled: this.storage.pb };
  }

  /** A byte range of the tensor as a binding (offset must meet the adapter's alignment). */
  range(byteOffset: number, byteSize: number): BufferBinding {
    this.assertLive();
    return { buffer: this.storage.pb.buffer, offset: byteOffset, size: byteSize, pooled: this.storage.pb };
  }

  /** Uploads raw element data at an element offset (streamed weight loading). The
   *  data's element type must already match the tensor's dtype. */
  write(data: ArrayBufferView, elementOffset = 0): void {
    this.assertLive();
    const at = elementOffset * BYTES[this.dtype];
    if (at + data.byteLength > this.bytes + 3) {
      throw new ShapeError(`write of ${data.byteLength} bytes at ${at} overflows ${this.toString()} (${this.bytes} bytes)`);
    }
    this.rt.upload(this.storage.pb, data, at);
  }

  /** A view with another shape over the same storage (no copy). */
  reshape(shape: readonly number[]): Tensor {
    this.assertLive();
    const resolved = [...shape];
    const neg = resolved.indexOf(-1);
    if (neg >= 0) resolved[neg] = this.size / numel(resolved.filter((_, i) => i !== neg));
    if (numel(resolved) !== this.size || resolved.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new ShapeError(`cannot reshape [${this.shape.join(',')}] to [${shape.join(',')}]`);
    }
    this.storage.refs++;
    return new Tensor(this.rt, resolved, this.dtype, this.storage);
  }

  /** Reads the tensor back as float32 (f16 is widened), or Int32/Uint32 arrays. */
  async toArray(): Promise<Float32Array> {
    if (this.dtype === 'i32' || this.dtype === 'u32') throw new EngineError('toArray() is for float tensors; use toIntArray()');
    const raw = await this.rt.read(this.binding, this.bytes);
    return this.dtype === 'f16' ? f16ToF32Array(new Uint16Array(raw)) : new Float32Array(raw);
  }

  async toIntArray(): Promise<Int32Array> {
    return new Int32Array(await this.rt.read(this.binding, this.bytes));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (--this.storage.refs === 0) this.rt.pool.release(this.storage.pb);
  }

  private assertLive(): void {
    if (this.disposed) throw new EngineError(`use of a disposed tensor [${this.shape.join(',')}]`);
  }

  toString(): string {
    return `Tensor<${this.dtype}>[${this.shape.join(',')}]`;
  }
}
