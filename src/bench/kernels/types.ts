// The shape of one kernel benchmark row. Each `src/bench/kernels/<family>.ts` exports
// `cases: BenchCase[]` (production path, representative SD shapes; listed in index.ts);
// the runner (run.ts) validates each case against its float64 reference, times it (timestamp
// queries where available, else submit-to-done over many repetitions), computes
// GFLOP/s, GB/s and the roofline fraction, and times the tfjs peer in the same process.
import type * as tfjs from '@tensorflow/tfjs-core';
import type { Runtime } from '../../gpu/runtime.js';
import type { Tensor } from '../../tensor/tensor.js';

export interface BenchInstance {
  /** Records one run of the op (no host sync); returns the outputs to dispose. */
  run(): Tensor | Tensor[];
  /** Runs once and returns the relative L2 error against the float64 reference
   *  (may use a smaller problem than the timed one if the reference is too slow). */
  validate?(): Promise<number>;
  dispose(): void;
}

export interface PeerInstance {
  /** Runs the equivalent tfjs op(s); returns tensors to dispose. */
  run(): tfjs.Tensor | tfjs.Tensor[];
  dispose(): void;
}

export interface BenchCase {
  /** Op family as reported: 'matmul', 'conv2d', 'attention', 'groupnorm', 'softmax', ... */
  op: string;
  /** Human-readable shape, e.g. '1024x1024x1024' or '8h x 40d, q1024 k77'. */
  shape: string;
  /** Useful floating-point operations per run (FMA = 2). */
  flops: number;
  /** Minimum bytes moved per run (inputs read once + outputs written once). */
  bytes: number;
  /** Host (or host-driven) work: timed by wall clock even where timestamps exist, since
   *  GPU time would leave the host part out (e.g. the NMS host path against its GPU contender). */
  host?: boolean;
  setup(rt: Runtime): BenchInstance;
  /** The same computation in tfjs-backend-webgpu, given the tf namespace. */
  peer?(tf: typeof tfjs): PeerInstance;
}
