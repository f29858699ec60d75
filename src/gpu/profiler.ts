// Per-dispatch GPU timing with timestamp queries. While profiling, every dispatch gets
// its own compute pass with begin/end timestamps; results are resolved in batches on
// submit and read back only when asked. Off by default: it changes pass structure.
// Scopes name the code a dispatch came from: `withScope(rt, 'to_k', () => ...)` tags every
// dispatch recorded inside with 'to_k' (nested scopes join with '/'), and timings are
// totalled per (scope, label). Off, a scope is one property test and a direct call.
// With `detail` on, every dispatch is also kept on its own (kernel spec, params, binding
// sizes, host time), for per-layer tables (bench/layers.ts) that need shapes and costs.
// Adapters without timestamp-query get a wall-clock profiler (Runtime.useWallProfiler):
// the recorder submits once per scope change and holds the submits back, then replays
// them one at a time, waiting for each (the model code records synchronously, so only a
// replay can see when each scope's work ends); a scope's time is split equally among its
// dispatches, and `segment` lets a caller split it better.
import type { Param } from './params.js';
import type { BufferBinding } from './recorder.js';

export interface KernelTiming {
  label: string;
  /** The scope path the dispatches were recorded in ('' outside any scope). */
  scope: string;
  calls: number;
  totalMs: number;
}

const CAPACITY = 2048; // queries per set (1024 dispatches)

/** What the runtime knows about one dispatch (kept only with `detail` on). */
export interface DispatchInfo {
  family: string;
  entry: string;
  dtype: 'f32' | 'f16';
  overrides: Readonly<Record<string, number>>;
  /** The Params uniform's fields, in struct order. */
  params: readonly Param[];
  /** Byte size of each storage binding, in binding order. */
  bindingBytes: readonly number[];
  /** Bytes of the distinct bound ranges (an operand bound twice counts once). */
  uniqueBytes: number;
  /** Host ms spent getting the pipeline (shader compilation on a cache miss). */
  pipelineMs: number;
}

/** One profiled dispatch. */
export interface DispatchTiming {
  label: string;
  scope: string;
  info: DispatchInfo | null;
  /** GPU ms from timestamps; in wall mode this dispatch's equal share of its segment. */
  ms: number;
  /** performance.now() when the dispatch was recorded. */
  hostAt: number;
  /** Wall mode: the submit (one scope's run of dispatches) it was timed in, and that
   *  submit's wall ms; -1 and 0 with timestamps. */
  segment: number;
  segmentMs: number;
}

/** Describes the bindings of a dispatch for DispatchInfo. */
export function bindingSizes(bindings: readonly BufferBinding[]): { bindingBytes: number[]; uniqueBytes: number } {
  const bindingBytes = bindings.map((b) => b.size ?? b.buffer.size - (b.offset ?? 0));
  let uniqueBytes = 0;
  bindings.forEach((b, i) => {
    const same = (c: BufferBinding, j: number) => c.buffer === b.buffer && (c.offset ?? 0) === (b.offset ?? 0) && bindingBytes[j] === bindingBytes[i];
    if (bindings.findIndex(same) === i) uniqueBytes += bindingBytes[i];
  });
  return { bindingBytes, uniqueBytes };
}

interface Pending { label: string; scope: string; info: DispatchInfo | null; hostAt: number }

export class Profiler {
  private querySet: GPUQuerySet | null = null;
  private resolveBuf: GPUBuffer | null = null;
  private used = 0;
  private open: Pending[] = [];
  private pending: Promise<void>[] = [];
  private totals = new Map<string, KernelTiming>();
  private records: DispatchTiming[] = [];
  /** Wall mode: dispatches of each closed segment, until its time arrives. */
  private segments: Pending[][] = [];
  private segmentBase = 0;
  /** The innermost open scope's path ('' when none is open). */
  private current = '';
  enabled = false;
  /** Keep every dispatch on its own (collectDispatches) besides the totals. */
  detail = false;

  /** `timestamps` false: the wall-clock mode for adapters without timestamp-query. */
  constructor(private device: GPUDevice, readonly timestamps = true) {
    if (!timestamps) return;
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

  /** Whether the recorder must submit before the next dispatch: the query set is full,
   *  or (wall mode) the scope changed since the last dispatch. */
  get needsFlush(): boolean {
    if (this.timestamps) return this.full;
    const last = this.open[this.open.length - 1];
    return last !== undefined && last.scope !== this.current;
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

  /** Notes the next dispatch (tagged with the current scope); returns the timestamp
   *  writes for its pass, or null in wall mode. */
  next(label: string, info: DispatchInfo | null = null): GPUComputePassTimestampWrites | null {
    this.open.push({ label, scope: this.current, info: this.detail ? info : null, hostAt: this.detail ? performance.now() : 0 });
    if (!this.querySet) return null;
    const i = this.used;
    this.used += 2;
    return { querySet: this.querySet, beginningOfPassWriteIndex: i, endOfPassWriteIndex: i + 1 };
  }

  private add(p: Pending, ms: number, segment = -1, segmentMs = 0): void {
    const key = `${p.scope}\0${p.label}`;
    const t = this.totals.get(key) ?? { label: p.label, scope: p.scope, calls: 0, totalMs: 0 };
    t.calls++;
    t.totalMs += ms > 0 ? ms : 0;
    this.totals.set(key, t);
    if (this.detail) this.records.push({ label: p.label, scope: p.scope, info: p.info, ms: ms > 0 ? ms : 0, hostAt: p.hostAt, segment, segmentMs });
  }

  /** Records the resolve into `encoder`; returns a hook to call after submit. Wall mode:
   *  records nothing (the recorder holds the submit; see closeSegment). */
  resolve(encoder: GPUCommandEncoder): (() => void) | null {
    if (this.used === 0 || !this.querySet || !this.resolveBuf) return null;
    const n = this.used;
    const done = this.open;
    const read = this.device.createBuffer({
      label: 'profiler.read',
      size: n * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.resolveQuerySet(this.querySet, 0, n, this.resolveBuf, 0);
    encoder.copyBufferToBuffer(this.resolveBuf, 0, read, 0, n * 8);
    this.used = 0;
    this.open = [];
    return () => {
      this.pending.push(
        read.mapAsync(GPUMapMode.READ).then(() => {
          const ts = new BigUint64Array(read.getMappedRange().slice(0));
          read.destroy();
          for (let k = 0; k < done.length; k++) this.add(done[k], Number(ts[2 * k + 1] - ts[2 * k]) / 1e6);
        }),
      );
    };
  }

  /** Wall mode: closes the dispatches noted since the last call into one segment (one
   *  held submit) and returns its id, or -1 when there were none. */
  closeSegment(): number {
    if (this.timestamps || this.open.length === 0) return -1;
    this.segments.push(this.open);
    this.open = [];
    return this.segmentBase + this.segments.length - 1;
  }

  /** Wall mode: the replayed segment `id` took `ms` (submit to done). */
  segmentDone(id: number, ms: number): void {
    const list = this.segments[id - this.segmentBase];
    if (!list) return;
    for (const p of list) this.add(p, ms / list.length, id, ms);
    this.segments[id - this.segmentBase] = [];
  }

  /** Waits for outstanding reads; returns totals per scope and kernel label (and clears them). */
  async collect(): Promise<KernelTiming[]> {
    await Promise.all(this.pending);
    this.pending = [];
    const out = [...this.totals.values()].sort((a, b) => b.totalMs - a.totalMs);
    this.totals.clear();
    this.records = [];
    this.segmentBase += this.segments.length;
    this.segments = [];
    return out;
  }

  /** With `detail`: every dispatch since the last collect, in recording order (and
   *  clears them with the totals). */
  async collectDispatches(): Promise<DispatchTiming[]> {
    await Promise.all(this.pending);
    const out = this.records.sort((a, b) => a.hostAt - b.hostAt);
    await this.collect();
    return out;
  }

  destroy(): void {
    this.querySet?.destroy();
    this.resolveBuf?.destroy();
  }
}

/** Runs `fn` inside the profiler scope `name` when `rt` is profiling; otherwise just runs
 *  it (one test; the caller's closure is the only cost), so model code may call it per layer. */
export function withScope<T>(rt: { readonly profiler: Profiler | null }, name: string, fn: () => T): T {
  const p = rt.profiler;
  return p !== null && p.enabled ? p.inScope(name, fn) : fn();
}
