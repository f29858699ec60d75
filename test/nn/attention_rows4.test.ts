// The attention forward variants the software adapter runs or ran (gpu/variants.ts):
// 'rows4' (shaders/attention_rows4.wgsl, four query rows per thread; lavapipe's default)
// and 'per_key' (shaders/attention.wgsl, one row per thread), each forced so that a
// hardware adapter, which defaults to per_tile, runs them too, checked against the
// float64 reference; each case asserts that the forced kernel is the one that ran.
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.js';
import { attention, attentionBackward, attentionWithProbs } from '../../src/nn/attention.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { attentionBackwardRef, attentionRef, type AttentionDims } from '../../src/ref/attention.js';
import { expectClose, randomArray, randomTensor, requireF16, runtime, TOL } from '../helpers.js';
import { forced } from './forced.js';

interface Case extends AttentionDims {
  name: string;
}

const rows4 = <R>(rt: Runtime, fn: () => R): R =>
  forced(rt, { attention: 'rows4' }, { watch: ['attention_forward', 'attention_rows4', 'attention_tiled'], families: ['attention_rows4'] }, fn);
const perKey = <R>(rt: Runtime, fn: () => R): R =>
  forced(rt, { attention: 'per_key' }, { watch: ['attention_forward', 'attention_rows4', 'attention_tiled'], families: ['attention'] }, fn);

function inputs(rt: Runtime, c: Case, seed: number) {
  const C = c.H * c.D;
  // Scores of a few units, as in attention.test.ts: neither flat nor one-hot.
  return {
    q: randomTensor(rt, [c.B, c.Lq, C], seed, -1.5, 1.5),
    k: randomTensor(rt, [c.B, c.Lk, C], seed + 1, -1.5, 1.5),
    v: randomTensor(rt, [c.B, c.Lk, C], seed + 2),
  };
}

const opts = (c: Case) => ({ heads: c.H, scale: c.scale, causal: c.causal });

describe('attention variant rows4 (forced)', () => {
  // Query blocks of 4 x WG rows (WG 8..64 from the length, 8 when causal): 300 rows are
  // two blocks of 4 x 40 with the second's last row slot partly empty; causal 77 rows
  // three blocks of 4 x 8 (CLIP's self-attention, 12 heads of 64 there); a single query;
  // keys over several ragged tiles (64 keys per tile at D = 8, 15 at D = 160); the head
  // dims of SD and CLIP: 40 (unrolled), 64, 80 and 160 (attention_rows4_chunked, in
  // chunks of 8, 10 and 10 vec4); causal masks where rows of one thread see different
  // key counts.
  const cases: Case[] = [
    { name: 'q300 k130 2h x 8d', B: 1, Lq: 300, Lk: 130, H: 2, D: 8 },
    { name: 'b2 q29 k77 2h x 40d scale 0.3', B: 2, Lq: 29, Lk: 77, H: 2, D: 40, scale: 0.3 },
    { name: 'causal b2 q77 k77 2h x 64d', B: 2, Lq: 77, Lk: 77, H: 2, D: 64, causal: true },
    { name: 'q17 k35 1h x 80d', B: 1, Lq: 17, Lk: 35, H: 1, D: 80 },
    { name: 'q9 k40 2h x 160d', B: 1, Lq: 9, Lk: 40, H: 2, D: 160 },
    { name: 'q1 k5 4h x 8d', B: 1, Lq: 1, Lk: 5, H: 4, D: 8 },
    { name: 'causal q270 k290 1h x 8d', B: 1, Lq: 270, Lk: 290, H: 1, D: 8, causal: true },
    // Scores of hundreds: nearly one-hot rows, exp(s - m) and the rescale factor
    // exp(m_old - m_new) underflow to 0 whenever the running max jumps.
    { name: 'q70 k150 2h x 8d scale 40', B: 1, Lq: 70, Lk: 150, H: 2, D: 8, scale: 40 },
    { name: 'causal q77 k77 1h x 8d scale 40', B: 1, Lq: 77, Lk: 77, H: 1, D: 8, scale: 40, causal: true },
  ];
  it.each(cases)('$name matches float64 (out, lse)', async (c) => {
    const rt = await runtime();
    const { q, k, v } = inputs(rt, c, 3 + c.Lq);
    const { out, lse } = rows4(rt, () => attention(q.t, k.t, v.t, opts(c)));
    const ref = attentionRef(q.data, k.data, v.data, c);
    expectClose(await out.toArray(), ref.out, { label: `rows4 ${c.name} out`, relL2: TOL.reduction });
    expectClose(await lse.toArray(), ref.lse, { label: `rows4 ${c.name} lse`, relL2: TOL.reduction });
  });

  it('its lse drives the backward and the DAAM probabilities', async () => {
    const rt = await runtime();
    const c: Case = { name: 'q30 k77', B: 1, Lq: 30, Lk: 77, H: 2, D: 8 };
    const { q, k, v } = inputs(rt, c, 50);
    const dout = randomTensor(rt, [c.B, c.Lq, c.H * c.D], 53);
    const { out, lse, probsMean } = rows4(rt, () => attentionWithProbs(q.t, k.t, v.t, opts(c)));
    const ref = attentionRef(q.data, k.data, v.data, c);
    expectClose(await probsMean.toArray(), ref.probsMean, { label: 'rows4 probsMean', relL2: TOL.reduction });
    const g = attentionBackward(q.t, k.t, v.t, out, lse, dout.t, opts(c));
    const gref = attentionBackwardRef(q.data, k.data, v.data, dout.data, c);
    expectClose(await g.dq.toArray(), gref.dq, { label: 'rows4 dq', relL2: TOL.reduction });
    expectClose(await g.dk.toArray(), gref.dk, { label: 'rows4 dk', relL2: TOL.reduction });
    expectClose(await g.dv.toArray(), gref.dv, { label: 'rows4 dv', relL2: TOL.reduction });
  });

  it('folds more than 65535 workgroups into a 2-D grid', async () => {
    const rt = await runtime();
    const c: Case = { name: 'grid', B: 1, Lq: 1, Lk: 3, H: 65540, D: 4 };
    const { q, k, v } = inputs(rt, c, 9);
    const { out } = rows4(rt, () => attention(q.t, k.t, v.t, opts(c)));
    expectClose(await out.toArray(), attentionRef(q.data, k.data, v.data, c).out, { label: 'rows4 grid out', relL2: TOL.reduction });
  });

  it('f16 storage matches float64 within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const c: Case = { name: 'f16', B: 1, Lq: 70, Lk: 77, H: 2, D: 8, causal: true };
    const C = c.H * c.D;
    const [qd, kd, vd] = [randomArray(c.Lq * C, 4, -1.5, 1.5), randomArray(c.Lk * C, 5, -1.5, 1.5), randomArray(c.Lk * C, 6)];
    const f16 = (a: Float32Array, L: number) => Tensor.from(rt, a, [1, L, C], 'f16');
    const [q, k, v] = [f16(qd, c.Lq), f16(kd, c.Lk), f16(vd, c.Lk)];
    const { out, lse } = rows4(rt, () => attention(q, k, v, opts(c)));
    expect(out.dtype).toBe('f16');
    // The reference on the f16-rounded inputs: what the kernel sees.
    const [qr, kr, vr] = await Promise.all([q.toArray(), k.toArray(), v.toArray()]);
    const ref = attentionRef(qr, kr, vr, c);
    expectClose(await out.toArray(), ref.out, { label: 'rows4 f16 out', relL2: TOL.f16 });
    expectClose(await lse.toArray(), ref.lse, { label: 'rows4 f16 lse', relL2: TOL.reduction });
  });
});

describe('attention variant per_key (forced)', () => {
  const cases: Case[] = [
    { name: 'b2 q100 k129 3h x 8d scale 0.3', B: 2, Lq: 100, Lk: 129, H: 3, D: 8, scale: 0.3 },
    { name: 'causal q70 k90 1h x 8d', B: 1, Lq: 70, Lk: 90, H: 1, D: 8, causal: true },
  ];
  it.each(cases)('$name matches float64 (out, lse)', async (c) => {
    const rt = await runtime();
    const { q, k, v } = inputs(rt, c, 7 + c.Lq);
    const { out, lse } = perKey(rt, () => attention(q.t, k.t, v.t, opts(c)));
    const ref = attentionRef(q.data, k.data, v.data, c);
    expectClose(await out.toArray(), ref.out, { label: `per_key ${c.name} out`, relL2: TOL.reduction });
    expectClose(await lse.toArray(), ref.lse, { label: `per_key ${c.name} lse`, relL2: TOL.reduction });
  });
});
