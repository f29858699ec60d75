import { describe, expect, it } from 'vitest';
import { attention, attentionBackward, attentionWithProbs } from '../../src/nn/attention.js';
import { ShapeError, LimitError } from '../../src/gpu/errors.js';
import type { Runtime } from '../../src/gpu/runtime.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { attentionBackwardRef, attentionRef, type AttentionDims } from '../../src/ref/attention.js';
import { expectClose, finiteDiff, randomArray, randomTensor, requireF16, runtime, TOL } from '../helpers.js';

interface Case extends AttentionDims {
  name: string;
}

function inputs(rt: Runtime, c: Case, seed: number) {
  const C = c.H * c.D;
  // Scores of a few units (|q.k| * scale up to ~3) so the softmax is neither flat nor one-hot.
  const q = randomTensor(rt, [c.B, c.Lq, C], seed, -1.5, 1.5);
  const k = randomTensor(rt, [c.B, c.Lk, C], seed + 1, -1.5, 1.5);
  const v = randomTensor(rt, [c.B, c.Lk, C], seed + 2);
  return { q, k, v };
}

const opts = (c: Case) => ({ heads: c.H, scale: c.scale, causal: c.causal });

describe('attention forward', () => {
  // Ragged lengths (37 queries x CLIP's 77 keys, 100 x 129 crossing the 64-row block),
  // the SD head dims 40/64/80/160 at small lengths, tiny dims, batch 2, causal.
  const cases: Case[] = [
    { name: 'q37 k77 2h x 8d', B: 1, Lq: 37, Lk: 77, H: 2, D: 8 },
    { name: 'b2 q100 k129 3h x 8d scale 0.3', B: 2, Lq: 100, Lk: 129, H: 3, D: 8, scale: 0.3 },
    { name: 'q19 k23 3h x 4d', B: 1, Lq: 19, Lk: 23, H: 3, D: 4 },
    { name: 'q21 k77 2h x 40d', B: 1, Lq: 21, Lk: 77, H: 2, D: 40 },
    { name: 'q20 k66 2h x 64d', B: 1, Lq: 20, Lk: 66, H: 2, D: 64 },
    { name: 'q17 k35 1h x 80d', B: 1, Lq: 17, Lk: 35, H: 1, D: 80 },
    { name: 'b2 q9 k18 2h x 160d', B: 2, Lq: 9, Lk: 18, H: 2, D: 160 },
    { name: 'q1 k5 4h x 64d', B: 1, Lq: 1, Lk: 5, H: 4, D: 64 },
    { name: 'causal b2 q77 k77 2h x 8d', B: 2, Lq: 77, Lk: 77, H: 2, D: 8, causal: true },
    { name: 'causal q70 k90 1h x 8d', B: 1, Lq: 70, Lk: 90, H: 1, D: 8, causal: true },
  ];
  it.each(cases)('$name matches float64 (out, lse)', async (c) => {
    const rt = await runtime();
    const { q, k, v } = inputs(rt, c, 11 + c.Lq);
    const { out, lse } = attention(q.t, k.t, v.t, opts(c));
    expect(out.shape).toEqual([c.B, c.Lq, c.H * c.D]);
    expect(lse.shape).toEqual([c.B, c.H, c.Lq]);
    const ref = attentionRef(q.data, k.data, v.data, c);
    expectClose(await out.toArray(), ref.out, { label: `${c.name} out`, relL2: TOL.reduction });
    expectClose(await lse.toArray(), ref.lse, { label: `${c.name} lse`, relL2: TOL.reduction });
  });

  it.each([
    { name: 'q37 k77 3h x 8d', B: 1, Lq: 37, Lk: 77, H: 3, D: 8 },
    { name: 'b2 q21 k129 2h x 40d', B: 2, Lq: 21, Lk: 129, H: 2, D: 40 },
    { name: 'causal q77 k77 2h x 8d', B: 1, Lq: 77, Lk: 77, H: 2, D: 8, causal: true },
  ] as Case[])('attentionWithProbs $name: probsMean matches float64', async (c) => {
    const rt = await runtime();
    const { q, k, v } = inputs(rt, c, 40 + c.Lk);
    const { out, lse, probsMean } = attentionWithProbs(q.t, k.t, v.t, opts(c));
    expect(probsMean.shape).toEqual([c.B, c.Lq, c.Lk]);
    const ref = attentionRef(q.data, k.data, v.data, c);
    expectClose(await probsMean.toArray(), ref.probsMean, { label: `${c.name} probsMean`, relL2: TOL.reduction });
    expectClose(await out.toArray(), ref.out, { label: `${c.name} out`, relL2: TOL.reduction });
    expectClose(await lse.toArray(), ref.lse, { label: `${c.name} lse`, relL2: TOL.reduction });
  });

  it('runs 4096 queries x 77 keys without a score matrix', async () => {
    const rt = await runtime();
    const c: Case = { name: 'q4096 k77', B: 1, Lq: 4096, Lk: 77, H: 2, D: 8 };
    const { q, k, v } = inputs(rt, c, 5);
    const before = rt.memory().liveBytes;
    const { out, lse } = attention(q.t, k.t, v.t, opts(c));
    // Only out and lse are allocated: far less than one head's 4096 x 77 score matrix.
    expect(rt.memory().liveBytes - before).toBeLessThan(c.Lq * c.Lk * 4);
    const ref = attentionRef(q.data, k.data, v.data, c);
    expectClose(await out.toArray(), ref.out, { label: 'q4096 out', relL2: TOL.reduction });
    expectClose(await lse.toArray(), ref.lse, { label: 'q4096 lse', relL2: TOL.reduction });
  });

  it('folds more than 65535 workgroups into a 2-D grid (forward and backward)', async () => {
    const rt = await runtime();
    // 65540 heads of 4 with 1 query row and 3 keys: one workgroup per head in each kernel.
    const c: Case = { name: 'grid', B: 1, Lq: 1, Lk: 3, H: 65540, D: 4 };
    const { q, k, v } = inputs(rt, c, 9);
    const { out, lse } = attention(q.t, k.t, v.t, opts(c));
    const ref = attentionRef(q.data, k.data, v.data, c);
    expectClose(await out.toArray(), ref.out, { label: 'grid out', relL2: TOL.reduction });
    const dout = randomTensor(rt, [c.B, c.Lq, c.H * c.D], 10);
    const g = attentionBackward(q.t, k.t, v.t, out, lse, dout.t, opts(c));
    const gref = attentionBackwardRef(q.data, k.data, v.data, dout.data, c);
    expectClose(await g.dq.toArray(), gref.dq, { label: 'grid dq', relL2: TOL.reduction });
    expectClose(await g.dk.toArray(), gref.dk, { label: 'grid dk', relL2: TOL.reduction });
    expectClose(await g.dv.toArray(), gref.dv, { label: 'grid dv', relL2: TOL.reduction });
  });

  it('f16 storage matches float64 within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const c: Case = { name: 'f16', B: 1, Lq: 37, Lk: 77, H: 2, D: 8 };
    const C = c.H * c.D;
    const [qd, kd, vd] = [randomArray(c.Lq * C, 1), randomArray(c.Lk * C, 2), randomArray(c.Lk * C, 3)];
    const f16 = (a: Float32Array, L: number) => Tensor.from(rt, a, [1, L, C], 'f16');
    const { out, probsMean } = attentionWithProbs(f16(qd, c.Lq), f16(kd, c.Lk), f16(vd, c.Lk), opts(c));
    expect(out.dtype).toBe('f16');
    const ref = attentionRef(qd, kd, vd, c);
    expectClose(await out.toArray(), ref.out, { label: 'f16 out', relL2: TOL.f16 });
    expectClose(await probsMean.toArray(), ref.probsMean, { label: 'f16 probsMean', relL2: TOL.f16 });
  });

  it('rejects heads that do not split the channels, and head dims it cannot hold', async () => {
    const rt = await runtime();
    const q = Tensor.zeros(rt, [1, 4, 24]);
    expect(() => attention(q, q, q, { heads: 5 })).toThrow(ShapeError);
    expect(() => attention(q, q, q, { heads: 4 })).toThrow(/multiple of 4/);
    const wide = Tensor.zeros(rt, [1, 2, 192]);
    expect(() => attention(wide, wide, wide, { heads: 1 })).toThrow(LimitError);
    expect(() => attention(q, Tensor.zeros(rt, [1, 4, 16]), q, { heads: 2 })).toThrow(ShapeError);
  });
});

describe('attention backward', () => {
  // Grounding decoder shapes (8 heads x 64: queries 1..20, cross-attention to 256 patch
  // tokens, self-attention n x n), ragged small shapes, batch 2 and causal.
  const cases: Case[] = [
    { name: 'cross q20 k256 8h x 64d', B: 1, Lq: 20, Lk: 256, H: 8, D: 64 },
    { name: 'self q20 k20 8h x 64d', B: 1, Lq: 20, Lk: 20, H: 8, D: 64 },
    { name: 'q1 k256 8h x 64d', B: 1, Lq: 1, Lk: 256, H: 8, D: 64 },
    { name: 'b2 q37 k77 2h x 8d', B: 2, Lq: 37, Lk: 77, H: 2, D: 8 },
    { name: 'q100 k129 1h x 8d scale 0.2', B: 1, Lq: 100, Lk: 129, H: 1, D: 8, scale: 0.2 },
    { name: 'causal b2 q70 k70 2h x 8d', B: 2, Lq: 70, Lk: 70, H: 2, D: 8, causal: true },
    { name: 'q9 k13 2h x 160d', B: 1, Lq: 9, Lk: 13, H: 2, D: 160 },
  ];
  it.each(cases)('$name matches the float64 backward', async (c) => {
    const rt = await runtime();
    const { q, k, v } = inputs(rt, c, 70 + c.Lk);
    const dout = randomTensor(rt, [c.B, c.Lq, c.H * c.D], 80 + c.Lq);
    const { out, lse } = attention(q.t, k.t, v.t, opts(c));
    const g = attentionBackward(q.t, k.t, v.t, out, lse, dout.t, opts(c));
    const ref = attentionBackwardRef(q.data, k.data, v.data, dout.data, c);
    expectClose(await g.dq.toArray(), ref.dq, { label: `${c.name} dq`, relL2: TOL.reduction });
    expectClose(await g.dk.toArray(), ref.dk, { label: `${c.name} dk`, relL2: TOL.reduction });
    expectClose(await g.dv.toArray(), ref.dv, { label: `${c.name} dv`, relL2: TOL.reduction });
  });

  it.each([
    { name: 'b2 q5 k7 2h x 4d', B: 2, Lq: 5, Lk: 7, H: 2, D: 4 },
    { name: 'causal q6 k6 1h x 8d', B: 1, Lq: 6, Lk: 6, H: 1, D: 8, causal: true },
  ] as Case[])('$name: the float64 backward matches central differences', (c) => {
    const C = c.H * c.D;
    const q = Float64Array.from(randomArray(c.B * c.Lq * C, 1, -1.5, 1.5));
    const k = Float64Array.from(randomArray(c.B * c.Lk * C, 2, -1.5, 1.5));
    const v = Float64Array.from(randomArray(c.B * c.Lk * C, 3));
    const dout = randomArray(c.B * c.Lq * C, 4);
    const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array) =>
      attentionRef(qq, kk, vv, c).out.reduce((s, o, i) => s + dout[i] * o, 0);
    const ref = attentionBackwardRef(q, k, v, dout, c);
    const check = (grad: Float64Array, fd: number[], idx: number[], what: string) =>
      idx.forEach((i, n) => expect(Math.abs(fd[n] - grad[i]), `${what}[${i}]`).toBeLessThan(1e-7));
    const iq = [0, 3, C + 1, q.length - 1];
    const ik = [0, 5, C, k.length - 2];
    check(ref.dq, finiteDiff((x) => loss(x, k, v), q, iq), iq, 'dq');
    check(ref.dk, finiteDiff((x) => loss(q, x, v), k, ik), ik, 'dk');
    check(ref.dv, finiteDiff((x) => loss(q, k, x), v, ik), ik, 'dv');
  });
});
