// Kernel benchmark runner over every case of src/bench/kernels (the families listed in
// kernels/index.ts). Per case:
//   setup -> validate() against the float64 reference (a failure marks the row)
//   -> warm up ours and the tfjs peer's -> `trials` rounds, each timing ours then the
//   peer's: wall (reps runs, then wait for the queue) and, where both devices have
//   timestamp-query, GPU time summed over every dispatch of a run -> one row
//   (report.ts). Interleaving keeps load that drifts on a shared machine from
//   favouring whichever side ran in the quieter minute.
// `ms` is GPU time when both sides have timestamps, else wall on both sides, so the
// speedup always compares like with like. Median and min are over `trials` trials.
// The peer is optional: without tfjs installed (it is a dev dependency) the rows have
// no peer columns.
import type { Runtime } from '../gpu/runtime.js';
import type { Tensor } from '../tensor/tensor.js';
import { KERNEL_FAMILIES } from './kernels/index.js';
import type { BenchCase, BenchInstance, PeerInstance } from './kernels/types.js';
import { openPeer, timePeer, warmPeer, type Peer } from './peer.js';
import { probeDevice, timeRuns, type ProbeOptions } from './probe.js';
import { makeRow, type BenchRow, type ProbeResult, type RowInput, type TimingMode } from './report.js';

export interface KernelCase {
  /** File stem under src/bench/kernels/. */
  family: string;
  bench: BenchCase;
}

export interface BenchOptions {
  /** Keep cases whose "family op shape" contains this substring (case-insensitive). */
  filter?: string;
  /** Runs per trial; default: enough for about `trialMs` per trial (2..200). */
  reps?: number;
  /** Timed trials per case (default 5). */
  trials?: number;
  /** Wall time one trial aims at when `reps` is not given (default 250 ms). */
  trialMs?: number;
  /** Time the tfjs peer (default true). */
  peer?: boolean;
  /** rel L2 above this fails a row (default 1e-4, the matmul/reduction tolerance),
   *  unless the case has its own `tolerance`. */
  tolerance?: number;
  /** Run these instead of every case of KERNEL_FAMILIES. */
  cases?: KernelCase[];
  probe?: ProbeOptions;
  /** Progress lines (the CLI sends them to stderr). */
  progress?: (line: string) => void;
}

export interface BenchResult {
  adapter: string;
  probe: ProbeResult;
  timing: TimingMode;
  rows: BenchRow[];
  peer: { adapter: string; timestamps: boolean } | null;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0];

/** Every case of every family, families in name order, cases in file order. */
export function kernelCases(families: Readonly<Record<string, readonly BenchCase[]>> = KERNEL_FAMILIES): KernelCase[] {
  return Object.keys(families).sort().flatMap((family) => families[family].map((bench) => ({ family, bench })));
}

export function matchesFilter(c: KernelCase, filter?: string): boolean {
  if (!filter) return true;
  return `${c.family} ${c.bench.op} ${c.bench.shape}`.toLowerCase().includes(filter.toLowerCase());
}

function disposeAll(out: Tensor | Tensor[]): void {
  for (const t of Array.isArray(out) ? out : [out]) t.dispose();
}

const clampReps = (trialMs: number, runMs: number) => Math.min(200, Math.max(2, Math.ceil(trialMs / Math.max(runMs, 1e-3))));

interface Context {
  rt: Runtime;
  mode: TimingMode;
  peer: Peer | null;
  trials: number;
  trialMs: number;
  reps?: number;
  tolerance: number;
}

/** One side of a comparison: warm-up (returns one run's wall ms) and timed trials. */
interface Side {
  warm(): Promise<number>;
  time(reps: number, mode: TimingMode): Promise<number[]>;
}

function ourSide(rt: Runtime, inst: BenchInstance): Side {
  const record = () => disposeAll(inst.run());
  return {
    async warm() {
      let once = 0;
      for (let i = 0; i < 2; i++) {
        const t0 = performance.now();
        record();
        await rt.sync();
        once = performance.now() - t0;
      }
      return once;
    },
    time: (reps, mode) => timeRuns(rt, record, reps, 1, mode),
  };
}

function peerSide(peer: Peer, inst: PeerInstance): Side {
  return { warm: () => warmPeer(peer, inst), time: (reps, mode) => timePeer(peer, inst, reps, 1, mode) };
}

/** Validates, then times both sides with their trials interleaved (ours, theirs, ours,
 *  ...), so load that drifts during a case (a shared machine) hits both alike. */
async function benchOne(ctx: Context, dc: KernelCase): Promise<RowInput> {
  const c = dc.bench;
  const mode: TimingMode = c.host ? 'wall' : ctx.mode;
  const row: RowInput = {
    family: dc.family, op: c.op, shape: c.shape, flops: c.flops, bytes: c.bytes, reps: 0, timing: mode,
    samples: null, wallSamples: null, peerSamples: null, peerWallSamples: null, relL2: null, valid: true, error: null,
  };
  let inst: BenchInstance | null = null;
  let peerInst: PeerInstance | null = null;
  try {
    inst = c.setup(ctx.rt);
    if (inst.validate) {
      row.relL2 = await inst.validate();
      // A case may carry its own bound (an f16 row, say); BenchCase has no field for it yet.
      const tol = (c as BenchCase & { tolerance?: number }).tolerance ?? ctx.tolerance;
      if (!(row.relL2 <= tol)) {
        row.valid = false;
        row.error = `rel L2 ${row.relL2.toExponential(2)} > ${tol.toExponential(0)}`;
      }
    }
    const ours = ourSide(ctx.rt, inst);
    const reps = ctx.reps ?? clampReps(ctx.trialMs, await ours.warm());
    // A failing peer costs the row its comparison, never the row itself.
    let theirs: Side | null = null;
    let peerReps = 0;
    const withPeer = async (step: (side: Side) => Promise<void>) => {
      if (!theirs) return;
      try {
        await step(theirs);
      } catch (e) {
        row.error = `peer: ${message(e)}`;
        theirs = null;
      }
    };
    if (ctx.peer && c.peer) {
      try {
        peerInst = c.peer(ctx.peer.tf);
        theirs = peerSide(ctx.peer, peerInst);
      } catch (e) {
        row.error = `peer: ${message(e)}`;
      }
      await withPeer(async (side) => {
        peerReps = ctx.reps ?? clampReps(ctx.trialMs, await side.warm());
      });
    }
    const wall: number[] = [];
    const gpu: number[] = [];
    const peerWall: number[] = [];
    const peerGpu: number[] = [];
    for (let t = 0; t < ctx.trials; t++) {
      wall.push(...(await ours.time(reps, 'wall')));
      await withPeer(async (side) => void peerWall.push(...(await side.time(peerReps, 'wall'))));
      if (mode !== 'timestamp') continue;
      gpu.push(...(await ours.time(reps, 'timestamp')));
      await withPeer(async (side) => void peerGpu.push(...(await side.time(peerReps, 'timestamp'))));
    }
    const timestamps = mode === 'timestamp';
    Object.assign(row, { reps, wallSamples: wall, samples: timestamps ? gpu : wall });
    if (theirs) Object.assign(row, { peerWallSamples: peerWall, peerSamples: timestamps ? peerGpu : peerWall });
  } catch (e) {
    row.valid = false;
    row.error = message(e);
  } finally {
    inst?.dispose();
    peerInst?.dispose();
    await ctx.rt.sync().catch(() => undefined);
    ctx.rt.pool.trim(); // SD-sized cases hold hundreds of MB; free them before the next
  }
  return row;
}

/** Probes the adapter, then validates and times every (matching) case. */
export async function runBench(rt: Runtime, opts: BenchOptions = {}): Promise<BenchResult> {
  const progress = opts.progress ?? (() => undefined);
  const selected = (opts.cases ?? kernelCases()).filter((c) => matchesFilter(c, opts.filter));

  let peer: Peer | null = null;
  if (opts.peer !== false && selected.some((c) => c.bench.peer)) {
    progress('starting the tfjs-backend-webgpu peer');
    try {
      peer = await openPeer(rt);
    } catch (e) {
      progress(`no peer timings: ${message(e)}`);
    }
  }
  try {
    const mode: TimingMode = rt.profiler && (!peer || peer.timestamps) ? 'timestamp' : 'wall';
    progress(`probing ${rt.adapterName} (${mode} timing)`);
    const probe = await probeDevice(rt, mode, opts.probe);
    progress(`probe: ${probe.fmaGflops.toFixed(2)} GFLOP/s FMA, ${probe.copyGbps.toFixed(2)} GB/s copy`);
    const ctx: Context = {
      rt, mode, peer, trials: opts.trials ?? 5, trialMs: opts.trialMs ?? 250, reps: opts.reps,
      tolerance: opts.tolerance ?? 1e-4,
    };
    const rows: BenchRow[] = [];
    for (const [i, dc] of selected.entries()) {
      progress(`[${i + 1}/${selected.length}] ${dc.family}: ${dc.bench.op} ${dc.bench.shape}`);
      const row = makeRow(await benchOne(ctx, dc), probe);
      if (row.error) progress(`  ${row.valid ? 'note' : 'FAILED'}: ${row.error}`);
      rows.push(row);
    }
    return {
      adapter: rt.adapterName, probe, timing: mode, rows,
      peer: peer ? { adapter: peer.adapter, timestamps: peer.timestamps } : null,
    };
  } finally {
    peer?.close();
  }
}
