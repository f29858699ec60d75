// Per-dispatch GPU timing with timestamp queries. While profiling, every dispatch gets
// its own compute pass with begin/end timestamps; results are resolved in batches on
// submit and read back only when asked. Off by default: it changes pass structure.

export interface KernelTiming {
  label: string;
  calls: number;
  totalMs: number;
}

const CAPACITY = 2048; // queries per set (1024 dispatches)

export class Profiler {
  private querySet: GPUQuerySet;
  private resolveBuf: GPUBuffer;
  private used = 0;
  private labels: string[] = [];
  private pending: Promise<void>[] = [];
  private totals = new Map<string, KernelTiming>();
  enabled = false;

  constructor(private device: GPUDevice) {
    this.querySet = device.createQuerySet({ label: 'profiler', type: 'timestamp', count: CAPACITY });
    this.resolveBuf = device.createBuffer({
      label: 'profiler.resolve',
      size: CAPACITY * 8,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
  }

  get full(): boolean {
    return this.used + 2 > CAPACITY;
  }

  /** Timestamp writes for the next dispatch's pass. */
  next(label: string): GPUComputePassTimestampWrites {
    const i = this.used;
    this.used += 2;
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: i, endOfPassWriteIndex: i + 1 };
  }

  /** Records the resolve into `encoder`; returns a hook to call after submit. */
  resolve(encoder: GPUCommandEncoder): (() => void) | null {
    if (this.used === 0) return null;
    const n = this.used;
    const labels = this.labels;
    const read = this.device.createBuffer({
      label: 'profiler.read',
      size: n * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.resolveQuerySet(this.querySet, 0, n, this.resolveBuf, 0);
    encoder.copyBufferToBuffer(this.resolveBuf, 0, read, 0, n * 8);
    this.used = 0;
    this.labels = [];
    return () => {
      this.pending.push(
        read.mapAsync(GPUMapMode.READ).then(() => {
          const ts = new BigUint64Array(read.getMappedRange().slice(0));
          read.destroy();
          for (let k = 0; k < labels.length; k++) {
            const ms = Number(ts[2 * k + 1] - ts[2 * k]) / 1e6;
            const t = this.totals.get(labels[k]) ?? { label: labels[k], calls: 0, totalMs: 0 };
            t.calls++;
            t.totalMs += ms > 0 ? ms : 0;
            this.totals.set(labels[k], t);
          }
        }),
      );
    };
  }

  /** Waits for outstanding reads; returns totals per kernel label (and clears them). */
  async collect(): Promise<KernelTiming[]> {
    await Promise.all(this.pending);
    this.pending = [];
    const out = [...this.totals.values()].sort((a, b) => b.totalMs - a.totalMs);
    this.totals.clear();
    return out;
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolveBuf.destroy();
  }
}
