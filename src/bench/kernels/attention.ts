// Attention benchmark rows (production path: nn/attention.ts). The fused forward: one
// query row per thread, K/V tiles staged in workgroup memory, online softmax; the
// [H, Lq, Lk] score matrix is never stored. Variants (gpu/variants.ts):
//   rows4     per_key's mapping with four query rows per thread (shaders/attention_rows4.wgsl);
//             the software adapter's choice
//   per_key   rescales the accumulator at every key, one query row per thread
//             (shaders/attention.wgsl)
//   per_tile  one max and one rescale per key tile, scores in workgroup memory
//             (shaders/attention_tiled.wgsl); hardware adapters' choice
// Shapes: SD 1.x at 32x32 latents (q1024) with self-attention (k1024)
// and cross-attention to CLIP's 77 tokens (k77), 8 heads of 40, batch 1, and CLIP's
// causal self-attention (batch 2 with CFG, 12 heads of 64, 77 tokens), under the
// adapter's choice (op attention, judged by the targets); then the self-attention
// shape with each variant forced (op attention:<variant>):
//   grounded-sd bench kernels --filter attention:per_tile
// Peer: tfjs-backend-webgpu on the same adapter, the unfused chain on [B*H, L, D]:
// tf.matMul(q, k, false, true) -> (+ a 0 / -1e9 mask when causal) -> tf.softmax
// (scores pre-scaled) -> tf.matMul(p, v).
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
  B?: number;
  causal?: boolean;
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
  { shape: '2x12h x 64d, q77 k77 causal', B: 2, H: 12, D: 64, Lq: 77, Lk: 77, causal: true },
  { shape: '8h x 40d, q1024 k1024 forced', H: 8, D: 40, Lq: 1024, Lk: 1024, variant: 'rows4' },
  { shape: '8h x 40d, q1024 k1024 forced', H: 8, D: 40, Lq: 1024, Lk: 1024, variant: 'per_key' },
  { shape: '8h x 40d, q1024 k1024 forced', H: 8, D: 40, Lq: 1024, Lk: 1024, variant: 'per_tile' },
];

/** Query rows checked against the float64 reference (all heads, all keys). */
const CHECK_ROWS = 16;

function inputs(s: Spec) {
  const C = s.H * s.D;
  const B = s.B ?? 1;
  return { q: randomArray(B * s.Lq * C, 1, -1.5, 1.5), k: randomArray(B * s.Lk * C, 2, -1.5, 1.5), v: randomArray(B * s.Lk * C, 3) };
}

/** Query-key pairs the kernel must score: all of them, or the causal triangle. */
function pairs(s: Spec): number {
  if (!s.causal) return s.Lq * s.Lk;
  let n = 0;
  for (let i = 0; i < s.Lq; i++) n += Math.min(i + 1, s.Lk);
  return n;
}

function makeCase(s: Spec): BenchCase {
  const C = s.H * s.D;
  const B = s.B ?? 1;
  const causal = s.causal ?? false;
  return {
    op: s.variant ? `attention:${s.variant}` : 'attention',
    shape: s.shape,
    // q k^T and p v: 2 * D flops each per (head, query, key) the kernel must score.
    flops: 4 * B * s.H * pairs(s) * s.D,
    bytes: 4 * B * (2 * s.Lq * C + 2 * s.Lk * C + s.H * s.Lq),
    setup(rt: Runtime): BenchInstance {
      const data = inputs(s);
      const q = Tensor.from(rt, data.q, [B, s.Lq, C]);
      const k = Tensor.from(rt, data.k, [B, s.Lk, C]);
      const v = Tensor.from(rt, data.v, [B, s.Lk, C]);
      const op = () => {
        const { out, lse } = attention(q, k, v, { heads: s.H, causal });
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
          // Short or causal sequences: the reference on every row (a row's causal mask
          // depends on its index).
          if (causal || B * s.Lq <= CHECK_ROWS * 16) {
            return relL2(got, attentionRef(data.q, data.k, data.v, { B, Lq: s.Lq, Lk: s.Lk, H: s.H, D: s.D, causal }).out);
          }
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
      // [B, L, H*D] -> [B*H, L, D], as an unfused engine would lay the heads out.
      const heads = (a: Float32Array, L: number) =>
        tf.tidy(() => tf.reshape(tf.transpose(tf.tensor4d(a, [B, L, s.H, s.D]), [0, 2, 1, 3]), [B * s.H, L, s.D]));
      const q = heads(data.q, s.Lq);
      const k = heads(data.k, s.Lk);
      const v = heads(data.v, s.Lk);
      const scale = tf.scalar(1 / Math.sqrt(s.D));
      // Causal: -1e9 on keys j > i, added to the scaled scores.
      const mask = causal
        ? tf.tensor2d(Float32Array.from({ length: s.Lq * s.Lk }, (_, e) => (e % s.Lk > Math.floor(e / s.Lk) ? -1e9 : 0)), [s.Lq, s.Lk])
        : null;
      return {
        run: () => tf.tidy(() => {
          const scores = tf.mul(tf.matMul(q, k, false, true), scale);
          return tf.matMul(tf.softmax(mask ? tf.add(scores, mask) : scores), v);
        }),
        dispose() {
          tf.dispose([q, k, v, scale]);
          if (mask) mask.dispose();
        },
      };
    },
  };
}

export const cases: BenchCase[] = SPECS.map(makeCase);
