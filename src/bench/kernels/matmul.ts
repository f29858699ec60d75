// Matmul benchmark rows (production path: nn/matmul.ts). Variants (gpu/variants.ts):
//   rows8    8 rows x 4 columns per thread, no workgroup memory (shaders/matmul.wgsl);
//            the software adapter's choice
//   tiled    64x64 / 128x64 tiles staged through workgroup memory, 4x4 / 8x4 per thread
//            (shaders/matmul_tiled.wgsl); hardware adapters' choice
// Rows without a variant name run the adapter's choice; the kernel picks its load path
// from the shape, so they cover each one:
//   vec4-n   a [M,K] and b [K,N] both loaded as vec4 (K, N multiples of 4): 1024^3
//   vec4-k   linear: b = weight [N,K] loaded as vec4 along k, fused bias: SD shapes
//   scalar   ragged N (77 columns): b read per element, edges clamped
//   transA   dweight = dy^T x of linearBackward: a [K,M] loaded as vec4 along m
// Rows of op matmul:<variant> force it (rt.variants.with), so both are measured on any
// adapter; the targets judge only the production rows (op matmul):
//   grounded-sd bench kernels --filter matmul:tiled
// Peer: tf.matMul / tf.fused.matMul (with bias) on tfjs-backend-webgpu, same adapter.
import type * as tfjs from '@tensorflow/tfjs-core';
import { linear, matmul } from '../../nn/matmul.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Runtime } from '../../gpu/runtime.js';
import type { VariantName } from '../../gpu/variants.js';
import { matmulRef } from '../../ref/matmul.js';
import type { BenchCase, BenchInstance, PeerInstance } from './types.js';
import { randomArray, relL2 } from '../data.js';

interface Spec {
  shape: string;
  batch: number;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  /** Linear layer: b is a PyTorch weight [N, K] (transB) with a bias [N]. */
  linear?: boolean;
  /** Forced kernel variant (else the adapter's choice). */
  variant?: VariantName<'matmul'>;
}

const SPECS: Spec[] = [
  { shape: '1024x1024x1024', batch: 1, M: 1024, N: 1024, K: 1024 },
  { shape: '4096x320x320 linear', batch: 1, M: 4096, N: 320, K: 320, linear: true },
  { shape: '2x77x768x768 linear', batch: 2, M: 77, N: 768, K: 768, linear: true },
  { shape: '2x4096x77x40 scalar', batch: 2, M: 4096, N: 77, K: 40 },
  { shape: '320x320x4096 transA', batch: 1, M: 320, N: 320, K: 4096, transA: true },
  { shape: '1024x1024x1024 forced', batch: 1, M: 1024, N: 1024, K: 1024, variant: 'rows8' },
  { shape: '1024x1024x1024 forced', batch: 1, M: 1024, N: 1024, K: 1024, variant: 'tiled' },
  { shape: '4096x320x320 linear forced', batch: 1, M: 4096, N: 320, K: 320, linear: true, variant: 'tiled' },
];

/** Rows of the output checked against the float64 reference (the full reference of the
 *  large rows would take seconds on the CPU). */
const CHECK_ROWS = 12;

function inputs(s: Spec) {
  const aShape = s.transA ? [s.K, s.M] : [s.batch, s.M, s.K];
  const bShape = s.linear ? [s.N, s.K] : [s.K, s.N];
  const aSize = aShape.reduce((x, y) => x * y, 1);
  const bSize = bShape.reduce((x, y) => x * y, 1);
  return {
    aShape, bShape,
    a: randomArray(aSize, 1),
    b: randomArray(bSize, 2, -1 / Math.sqrt(s.K), 1 / Math.sqrt(s.K)),
    bias: randomArray(s.N, 3),
  };
}

/** Rel L2 over CHECK_ROWS rows spread over every batch matrix. */
function checkRows(s: Spec, data: ReturnType<typeof inputs>, out: Float32Array): number {
  const ref: number[] = [];
  const got: number[] = [];
  const K = s.K;
  for (let r = 0; r < CHECK_ROWS; r++) {
    const z = r % s.batch;
    const m = Math.floor((r * (s.M - 1)) / (CHECK_ROWS - 1));
    // One row of a as a [1, K] matrix (transposed a: column m of [K, M]).
    const row = Float64Array.from({ length: K }, (_, k) => (s.transA ? data.a[k * s.M + m] : data.a[(z * s.M + m) * K + k]));
    const c = matmulRef(row, data.b, 1, 1, s.N, K, { transB: s.linear, bias: s.linear ? data.bias : undefined });
    ref.push(...c);
    got.push(...out.subarray((z * s.M + m) * s.N, (z * s.M + m + 1) * s.N));
  }
  return relL2(got, ref);
}

function makeCase(s: Spec): BenchCase {
  const outSize = s.batch * s.M * s.N;
  return {
    op: s.variant ? `matmul:${s.variant}` : 'matmul',
    shape: s.shape,
    flops: 2 * s.batch * s.M * s.N * s.K,
    bytes: 4 * (s.batch * s.M * s.K + s.K * s.N + outSize + (s.linear ? s.N : 0)),
    setup(rt: Runtime): BenchInstance {
      const data = inputs(s);
      const a = Tensor.from(rt, data.a, data.aShape);
      const b = Tensor.from(rt, data.b, data.bShape);
      const bias = s.linear ? Tensor.from(rt, data.bias, [s.N]) : undefined;
      const op = () => (s.linear ? linear(a, b, bias) : matmul(a, b, { transA: s.transA }));
      const run = () => (s.variant ? rt.variants.with({ matmul: s.variant }, op) : op());
      return {
        run,
        async validate() {
          const out = run();
          const err = checkRows(s, data, await out.toArray());
          out.dispose();
          return err;
        },
        dispose() {
          a.dispose();
          b.dispose();
          bias?.dispose();
        },
      };
    },
    peer(tf: typeof tfjs): PeerInstance {
      const data = inputs(s);
      const a = tf.tensor(data.a, s.transA ? data.aShape : [s.batch * s.M, s.K]);
      const b = tf.tensor(data.b, data.bShape);
      const bias = tf.tensor(data.bias, [s.N]);
      return {
        run: () =>
          s.linear
            ? tf.fused.matMul({ a, b, transposeB: true, bias })
            : tf.matMul(a, b, s.transA ?? false, false),
        dispose() {
          a.dispose();
          b.dispose();
          bias.dispose();
        },
      };
    },
  };
}

export const cases: BenchCase[] = SPECS.map(makeCase);
