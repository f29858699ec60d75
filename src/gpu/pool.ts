// Size-bucketed pool of storage buffers. A released buffer can be handed out again at
// once: dispatches run in queue order, so a later kernel writing it runs after the
// earlier kernels that read it. Only queue.writeBuffer jumps ahead of recorded work,
// which the runtime handles by flushing first (see Runtime.upload).
import { formatBytes, LimitError } from './errors.js';

export interface PooledBuffer {
  buffer: GPUBuffer;
  /** Bucket size in bytes (what the buffer really occupies). */
  bytes: number;
  /** Recorder epoch of the last command that used it (see Recorder). */
  epoch: number;
}

/** Rounds up to 4 sub-steps per power of two (at most 25% waste), multiple of 256. */
export function bucketSize(bytes: number): number {
  const n = Math.max(256, bytes);
  const p = 2 ** Math.floor(Math.log2(n));
  const step = Math.max(256, p / 4);
  return Math.ceil(n / step) * step;
}

export class BufferPool {
  private free = new Map<number, PooledBuffer[]>();
  liveBytes = 0;
  peakBytes = 0;
  /** Bytes held by free buffers waiting for reuse. */
  cachedBytes = 0;
  allocations = 0;

  constructor(
    private device: GPUDevice,
    private maxBufferSize: number,
    private adapterName: string,
  ) {}

  /** A buffer of at least `bytes`. 'bucket' sizes (the default) let later tensors of
   *  similar size reuse it; 'exact' (a multiple of 256) is for buffers that live as long as
   *  a model, its weights, where bucket rounding would waste up to a quarter of them
   *  (about 0.25 GiB of SD 1.5 in f16). */
  acquire(bytes: number, label: string, fit: 'bucket' | 'exact' = 'bucket'): PooledBuffer {
    const size = fit === 'exact' ? Math.max(256, Math.ceil(bytes / 256) * 256) : bucketSize(bytes);
    if (size > this.maxBufferSize) {
      throw new LimitError(
        `buffer '${label}' needs ${formatBytes(bytes)} but maxBufferSize is ${formatBytes(this.maxBufferSize)} on ${this.adapterName}; ` +
          'split the tensor or use a smaller batch/size',
      );
    }
    const list = this.free.get(size);
    let pb = list?.pop();
    if (pb) {
      this.cachedBytes -= size;
    } else {
      const buffer = this.device.createBuffer({
        label,
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.allocations++;
      pb = { buffer, bytes: size, epoch: -1 };
    }
    this.liveBytes += size;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
    return pb;
  }

  release(pb: PooledBuffer): void {
    this.liveBytes -= pb.bytes;
    let list = this.free.get(pb.bytes);
    if (!list) this.free.set(pb.bytes, (list = []));
    list.push(pb);
    this.cachedBytes += pb.bytes;
  }

  /** Destroys every cached free buffer (live ones are untouched). */
  trim(): void {
    for (const list of this.free.values()) for (const pb of list) pb.buffer.destroy();
    this.free.clear();
    this.cachedBytes = 0;
  }

  resetPeak(): void {
    this.peakBytes = this.liveBytes;
  }
}
