// The attention variant hardware adapters run (gpu/variants.ts attention 'per_tile':
// shaders/attention_tiled.wgsl, one max and one rescale per key tile), forced on this
// adapter and checked against the float64 reference; each case asserts that the
// per-tile kernel is the one that ran.
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

const perTile = <R>(rt: Runtime, fn: () => R): R =>
  forced(rt, { attention: 'per_tile' }, { watch: ['attention_forward', 'attention_tiled'], families: ['attention_tiled'] }, fn);

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

describe('attention variant per_tile (forced)', () => {
  // Ragged lengths across several key tiles (up to 64 keys per tile; 23 at D = 160),
  // query blocks of 8 / 32 / 64 rows, SD's head dims 40, 80 and 160, a single query,
  // causal masks whose first tile is partly masked for every row.
  const cases: Case[] = [
    { name: 'q37 k77 2h x 8d', B: 1, Lq: 37, Lk: 77, H: 2, D: 8 },
    { name: 'b2 q100 k200 3h x 8d scale 0.3', B: 2, Lq: 100, Lk: 200, H: 3, D: 8, scale: 0.3 },
    { name: 'q21 k77 2h x 40d', B: 1, Lq: 21, Lk: 77, H: 2, D: 40 },
    { name: 'q17 k35 1h x 80d', B: 1, Lq: 17, Lk: 35, H: 1, D: 80 },
    { name: 'b2 q9 k50 2h x 160d', B: 2, Lq: 9, Lk: 50, H: 2, D: 160 },
    { name: 'q1 k5 4h x 8d', B: 1, Lq: 1, Lk: 5, H: 4, D: 8 },
    { name: 'causal b2 q77 k77 2h x 8d', B: 2, Lq: 77, Lk: 77, H: 2, D: 8, causal: true },
    { name: 'causal q70 k90 1h x 8d', B: 1, Lq: 70, Lk: 90, H: 1, D: 8, causal: true },
  ];
  it.each(cases)('$name matches float64 (out, lse)', async (c) => {
    const rt = await runtime();
    const { q, k, v } = inputs(rt, c, 1 + c.Lq);
    const { out, lse } = perTile(rt, () => attention(q.t, k.t, v.t, opts(c)));
    const ref = attentionRef(q.data, k.data, v.data, c);
    expectClose(await out.toArray(), ref.out, { label: `per_tile ${c.name} out`, relL2: TOL.reduction });
    expectClose(await lse.toArray(), ref.lse, { label: `per_tile ${c.name} lse`, relL2: TOL.reduction });
  });

  it('its lse drives the backward and the DAAM probabilities', async () => {
    const rt = await runtime();
    const c: Case = { name: 'q30 k77', B: 1, Lq: 30, Lk: 77, H: 2, D: 8 };
    const { q, k, v } = inputs(rt, c, 40);
    const dout = randomTensor(rt, [c.B, c.Lq, c.H * c.D], 43);
    const { out, lse, probsMean } = perTile(rt, () => attentionWithProbs(q.t, k.t, v.t, opts(c)));
    const ref = attentionRef(q.data, k.data, v.data, c);
    expectClose(await probsMean.toArray(), ref.probsMean, { label: 'per_tile probsMean', relL2: TOL.reduction });
    const g = attentionBackward(q.t, k.t, v.t, out, lse, dout.t, opts(c));
    const gref = attentionBackwardRef(q.data, k.data, v.data, dout.data, c);
    expectClose(await g.dq.toArray(), gref.dq, { label: 'per_tile dq', relL2: TOL.reduction });
    expectClose(await g.dk.toArray(), gref.dk, { label: 'per_tile dk', relL2: TOL.reduction });
    expectClose(await g.dv.toArray(), gref.dv, { label: 'per_tile dv', relL2: TOL.reduction });
  });

  it('folds more than 65535 workgroups into a 2-D grid', async () => {
    const rt = await runtime();
    const c: Case = { name: 'grid', B: 1, Lq: 1, Lk: 3, H: 65540, D: 4 };
    const { q, k, v } = inputs(rt, c, 9);
    const { out } = perTile(rt, () => attention(q.t, k.t, v.t, opts(c)));
    expectClose(await out.toArray(), attentionRef(q.data, k.data, v.data, c).out, { label: 'per_tile grid out', relL2: TOL.reduction });
  });

  it('f16 storage matches float64 within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const c: Case = { name: 'f16', B: 1, Lq: 37, Lk: 77, H: 2, D: 8 };
    const C = c.H * c.D;
    const [qd, kd, vd] = [randomArray(c.Lq * C, 1), randomArray(c.Lk * C, 2), randomArray(c.Lk * C, 3)];
    const f16 = (a: Float32Array, L: number) => Tensor.from(rt, a, [1, L, C], 'f16');
    const [q, k, v] = [f16(qd, c.Lq), f16(kd, c.Lk), f16(vd, c.Lk)];
    const { out } = perTile(rt, () => attention(q, k, v, opts(c)));
    expect(out.dtype).toBe('f16');
    expectClose(await out.toArray(), attentionRef(qd, kd, vd, c).out, { label: 'per_tile f16 out', relL2: TOL.f16 });
  });
});
