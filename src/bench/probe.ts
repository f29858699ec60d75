// Roofline probe (shaders/probe.wgsl): the adapter's FMA rate and copy bandwidth,
// measured in the same process as the kernels they rate, plus the timing loop that the
// runner shares. The FMA probe doubles its grid until one run is long enough to time,
// so it fills anything from lavapipe's 2 cores to a large GPU; both probes report their
// best trial (a ceiling, not a typical value).
import type { Runtime } from '../gpu/runtime.js';
import { f32 } from '../gpu/params.js';
import { Tensor } from '../tensor/tensor.js';
import type { ProbeResult, TimingMode } from './report.js';

const WG = 256;
/** FMA steps per chain; 8 chains of vec4, 2 flops per FMA: 64 flops per step. */
const FMA_ITERS = 512;
const FLOPS_PER_THREAD = FMA_ITERS * 8 * 4 * 2;
/** vec4s per thread in probe_copy (COPY_PER_THREAD in the shader). */
const COPY_PER_THREAD = 4;

export interface ProbeOptions {
  /** Bytes per copy buffer (default: 64 MiB, capped by the binding and buffer limits). */
  copyBytes?: number;
  /** The FMA grid doubles until one run takes at least this long (default 20 ms). */
  minMs?: number;
  /** Timed trials per probe (default 3). */
  trials?: number;
}

/** Records `record` `reps` times per trial and returns one per-run ms value per trial:
 *  from timestamp queries (summed over every dispatch of the trial) or from wall time
 *  between the first record and the queue draining. */
export async function timeRuns(
  rt: Runtime, record: () => void, reps: number, trials: number, mode: TimingMode,
): Promise<number[]> {
  const prof = rt.profiler;
  if (mode === 'timestamp' && !prof) throw new Error('timestamp timing needs the timestamp-query feature');
  await rt.sync();
  if (mode === 'timestamp' && prof) {
    await prof.collect(); // drop anything recorded before
    prof.enabled = true;
  }
  const out: number[] = [];
  try {
    for (let t = 0; t < trials; t++) {
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) record();
      await rt.sync();
      const wall = performance.now() - t0;
      if (mode === 'timestamp' && prof) {
        const kernels = await prof.collect();
        out.push(kernels.reduce((a, k) => a + k.totalMs, 0) / reps);
      } else {
        out.push(wall / reps);
      }
    }
  } finally {
    if (prof) prof.enabled = false;
  }
  return out;
}

function fmaDispatch(rt: Runtime, out: Tensor, threads: number): void {
  rt.dispatch(
    { family: 'probe', entry: 'probe_fma', overrides: { WG } },
    {
      params: [threads, FMA_ITERS, f32(0.999), f32(1e-3)],
      bindings: [out.binding],
      workgroups: Math.ceil(threads / WG),
      label: 'probe_fma',
    },
  );
}

async function probeFma(rt: Runtime, mode: TimingMode, minMs: number, trials: number): Promise<number> {
  const maxThreads = Math.min(1 << 24, Math.floor(rt.limits.maxStorageBufferBindingSize / 4));
  let threads = 64 * WG;
  for (;;) {
    const out = Tensor.empty(rt, [threads], 'f32', 'probe.fma');
    try {
      fmaDispatch(rt, out, threads); // compile + warm up
      const [once] = await timeRuns(rt, () => fmaDispatch(rt, out, threads), 1, 1, 'wall');
      if (once >= minMs || threads * 2 > maxThreads) {
        const ms = Math.min(...(await timeRuns(rt, () => fmaDispatch(rt, out, threads), 1, trials, mode)));
        return (threads * FLOPS_PER_THREAD) / (ms * 1e6);
      }
    } finally {
      out.dispose();
    }
    threads *= 2;
  }
}

async function probeCopy(rt: Runtime, mode: TimingMode, bytes: number, trials: number): Promise<number> {
  const vec4s = Math.floor(bytes / 16);
  const threads = Math.ceil(vec4s / COPY_PER_THREAD);
  // Contents do not matter to a copy; the warm-up run also takes the first-touch faults.
  const src = Tensor.empty(rt, [vec4s * 4], 'f32', 'probe.copy_src');
  const dst = Tensor.empty(rt, [vec4s * 4], 'f32', 'probe.copy_dst');
  const record = () =>
    rt.dispatch(
      { family: 'probe', entry: 'probe_copy', overrides: { WG } },
      { params: [vec4s, threads, f32(0), f32(0)], bindings: [src.binding, dst.binding], workgroups: Math.ceil(threads / WG), label: 'probe_copy' },
    );
  try {
    record();
    const ms = Math.min(...(await timeRuns(rt, record, 1, trials, mode)));
    return (2 * vec4s * 16) / (ms * 1e6);
  } finally {
    src.dispose();
    dst.dispose();
  }
}

/** Measures the FMA rate (GFLOP/s) and copy bandwidth (GB/s, read + write). */
export async function probeDevice(rt: Runtime, mode: TimingMode, opts: ProbeOptions = {}): Promise<ProbeResult> {
  const trials = opts.trials ?? 3;
  const cap = Math.min(rt.limits.maxStorageBufferBindingSize, rt.limits.maxBufferSize);
  const copyBytes = Math.min(opts.copyBytes ?? 64 * 2 ** 20, cap);
  const fmaGflops = await probeFma(rt, mode, opts.minMs ?? 20, trials);
  const copyGbps = await probeCopy(rt, mode, copyBytes, trials);
  rt.pool.trim(); // the copy buffers are large; hand them back before the cases run
  return { fmaGflops, copyGbps, timing: mode };
}
