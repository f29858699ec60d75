// Per-dispatch GPU timing with timestamp queries. While profiling, every dispatch gets
// its own compute pass with begin/end timestamps; results are resolved in batches on
// submit and read back only when asked. Off by default: it changes pass structure.
// Scopes name the code a dispatch came from: `withScope(rt, 'to_k', () => ...)` tags every
// dispatch recorded inside with 'to_k' (nested scopes join with '/'), and timings are
// totalled per (scope, label). Off, a scope is one property test and a direct call.

export interface KernelTiming {
  label: string;
  /** The scope path the dispatches were recorded in ('' outside any scope). */
  scope: string;
  calls: number;
  totalMs: number;
}

const CAPACITY = 2048; // queries per set (1024 dispatches)

export class Profiler {
  private querySet: GPUQuerySet;
  private resolveBuf: GPUBuffer;
  private used = 0;
  private labels: string[] = [];
  private scopes: string[] = [];
  private pending: Promise<void>[] = [];
  private totals = new Map<string, KernelTiming>();
  /** The innermost open scope's path ('' when none is open). */
  private current = '';
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

  /** The scope path dispatches are recorded in now ('' outside any scope). */
  get scope(): string {
    return this.current;
  }

  /** Runs `fn` with `name` pushed onto the scope path, popped when it returns or throws.
   *  `fn` must record its dispatches before returning (a promise's later work is not in
   *  the scope). Use withScope, which skips this when profiling is off. */
  inScope<T>(name: string, fn: () => T): T {
    const outer = this.current;
    this.current = outer ? `${outer}/${name}` : name;
    try {
      return fn();
    } finally {
      this.current = outer;
    }
  }

  /** Timestamp writes for the next dispatch's pass, tagged with the current scope. */
  next(label: string): GPUComputePassTimestampWrites {
    const i = this.used;
    this.used += 2;
    this.labels.push(label);
    this.scopes.push(this.current);
    return { querySet: this.querySet, beginningOfPassWriteIndex: i, endOfPassWriteIndex: i + 1 };
  }

  /** Records the resolve into `encoder`; returns a hook to call after submit. */
  resolve(encoder: GPUCommandEncoder): (() => void) | null {
    if (this.used === 0) return null;
    const n = this.used;
    const labels = this.labels;
    const scopes = this.scopes;
    const read = this.device.createBuffer({
      label: 'profiler.read',
      size: n * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.resolveQuerySet(this.querySet, 0, n, this.resolveBuf, 0);
    encoder.copyBufferToBuffer(this.resolveBuf, 0, read, 0, n * 8);
    this.used = 0;
    this.labels = [];
    this.scopes = [];
    return () => {
      this.pending.push(
        read.mapAsync(GPUMapMode.READ).then(() => {
          const ts = new BigUint64Array(read.getMappedRange().slice(0));
          read.destroy();
          for (let k = 0; k < labels.length; k++) {
            const ms = Number(ts[2 * k + 1] - ts[2 * k]) / 1e6;
            const key = `${scopes[k]}\0${labels[k]}`;
            const t = this.totals.get(key) ?? { label: labels[k], scope: scopes[k], calls: 0, totalMs: 0 };
            t.calls++;
            t.totalMs += ms > 0 ? ms : 0;
            this.totals.set(key, t);
          }
        }),
      );
    };
  }

  /** Waits for outstanding reads; returns totals per scope and kernel label (and clears them). */
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

/** Runs `fn` inside the profiler scope `name` when `rt` is profiling; otherwise just runs
 *  it (one test; the caller's closure is the only cost), so model code may call it per layer. */
export function withScope<T>(rt: { readonly profiler: Profiler | null }, name: string, fn: () => T): T {
  const p = rt.profiler;
  return p !== null && p.enabled ? p.inScope(name, fn) : fn();
}
