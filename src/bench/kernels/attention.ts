// Attention benchmark rows (production path: nn/attention.ts). The fused forward: one
// query row per thread, K/V tiles staged in workgroup memory, online softmax; the
// [H, Lq, Lk] score matrix is never stored. Variants (gpu/variants.ts):
//   per_key   rescales the accumulator at every key (shaders/attention.wgsl); the
//             software adapter's choice
//   per_tile  one max and one rescale per key tile, scores in workgroup memory
//             (shaders/attention_tiled.wgsl); hardware adapters' choice
// Shapes: SD 1.x at 32x32 latents (q1024) with self-attention (k1024)
// and cross-attention to CLIP's 77 tokens (k77), 8 heads of 40, batch 1, under the
// adapter's choice (op attention, judged by the targets); then the self-attention
// shape with each variant forced (op attention:<variant>):
//   grounded-sd bench kernels --filter attention:per_tile
// Peer: tfjs-backend-webgpu on the same adapter, the unfused chain on [8, L, 40]:
// tf.matMul(q, k, false, true) -> tf.softmax (scores pre-scaled) -> tf.matMul(p, v).
import type * as tfjs from '@tensorflow/tfjs-core';
import { attention } from '../../nn/attention.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Runtime } from '../../gpu/runtime.js';
import type { VariantName } from '../../gpu/variants.js';
import { attentionRef } from '../../ref/attention.js';
import type { BenchCase, BenchInstance, PeerInstance } from './types.js';
import { randomArray, relL2 } from '../data.js';

interface Spec {
  shape: string;
  H: number;
  D: number;
  Lq: number;
  Lk: number;
  /** Forced kernel variant (else the adapter's choice). */
  variant?: VariantName<'attention'>;
}

const SPECS: Spec[] = [
  { shape: '8h x 40d, q1024 k1024', H: 8, D: 40, Lq: 1024, Lk: 1024 },
  { shape: '8h x 40d, q1024 k77', H: 8, D: 40, Lq: 1024, Lk: 77 },
  { shape: '8h x 40d, q1024 k1024 forced', H: 8, D: 40, Lq: 1024, Lk: 1024, variant: 'per_key' },
  { shape: '8h x 40d, q1024 k1024 forced', H: 8, D: 40, Lq: 1024, Lk: 1024, variant: 'per_tile' },
];

/** Query rows checked against the float64 reference (all heads, all keys). */
const CHECK_ROWS = 16;

function inputs(s: Spec) {
  const C = s.H * s.D;
  return { q: randomArray(s.Lq * C, 1, -1.5, 1.5), k: randomArray(s.Lk * C, 2, -1.5, 1.5), v: randomArray(s.Lk * C, 3) };
}

function makeCase(s: Spec): BenchCase {
  const C = s.H * s.D;
  return {
    op: s.variant ? `attention:${s.variant}` : 'attention',
    shape: s.shape,
    // q k^T and p v: 2 * D flops each per (head, query, key).
    flops: 4 * s.H * s.Lq * s.Lk * s.D,
    bytes: 4 * (2 * s.Lq * C + 2 * s.Lk * C + s.H * s.Lq),
    setup(rt: Runtime): BenchInstance {
      const data = inputs(s);
      const q = Tensor.from(rt, data.q, [1, s.Lq, C]);
      const k = Tensor.from(rt, data.k, [1, s.Lk, C]);
      const v = Tensor.from(rt, data.v, [1, s.Lk, C]);
      const op = () => {
        const { out, lse } = attention(q, k, v, { heads: s.H });
        return [out, lse];
      };
      const run = () => (s.variant ? rt.variants.with({ attention: s.variant }, op) : op());
      return {
        run,
        async validate() {
          const [out, lse] = run();
          const got = await out.toArray();
          lse.dispose();
          out.dispose();
          // The reference on CHECK_ROWS query rows spread over the sequence.
          const rows = Array.from({ length: CHECK_ROWS }, (_, r) => Math.floor((r * (s.Lq - 1)) / (CHECK_ROWS - 1)));
          const qRows = new Float32Array(CHECK_ROWS * C);
          rows.forEach((m, r) => qRows.set(data.q.subarray(m * C, (m + 1) * C), r * C));
          const ref = attentionRef(qRows, data.k, data.v, { B: 1, Lq: CHECK_ROWS, Lk: s.Lk, H: s.H, D: s.D }).out;
          const sel = new Float32Array(CHECK_ROWS * C);
          rows.forEach((m, r) => sel.set(got.subarray(m * C, (m + 1) * C), r * C));
          return relL2(sel, ref);
        },
        dispose() {
          q.dispose();
          k.dispose();
          v.dispose();
        },
      };
    },
    peer(tf: typeof tfjs): PeerInstance {
      const data = inputs(s);
      // [L, H*D] -> [H, L, D], as an unfused engine would lay the heads out.
      const heads = (a: Float32Array, L: number) => tf.tidy(() => tf.transpose(tf.tensor3d(a, [L, s.H, s.D]), [1, 0, 2]));
      const q = heads(data.q, s.Lq);
      const k = heads(data.k, s.Lk);
      const v = heads(data.v, s.Lk);
      const scale = tf.scalar(1 / Math.sqrt(s.D));
      return {
        run: () => tf.tidy(() => tf.matMul(tf.softmax(tf.mul(tf.matMul(q, k, false, true), scale)), v)),
        dispose() {
          tf.dispose([q, k, v, scale]);
        },
      };
    },
  };
}

export const cases: BenchCase[] = SPECS.map(makeCase);
