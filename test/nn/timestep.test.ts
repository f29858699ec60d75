import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { timestepEmbedding, type TimestepOptions } from '../../src/nn/timestep.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { timestepEmbeddingRef } from '../../src/ref/timestep.js';
import { expectClose, runtime } from '../helpers.js';

/** One f32 ulp at |v| (2^-149 floor for tiny values). */
const ulp = (v: number) => 2 ** (Math.max(Math.floor(Math.log2(Math.abs(v) || 1e-38)), -126) - 23);

// f32 tolerances, as torch's own f32 result would meet them:
// - against the f32-rounded reference (torch's arguments, exact sin/cos), each element
//   within 4 ulp of its argument (exp may differ from the correctly rounded one by an
//   ulp or two, which moves the rounded argument by as much) plus 5e-7 for the
//   reduction and polynomials;
// - against the exact float64 definition, rel L2 below 1e-4: the f32 argument itself is
//   off by up to half an ulp of ~1000 rad (3e-5) at t = 999.
const cases: [number[], number, TimestepOptions][] = [
  [[999, 5], 320, { flipSinToCos: true, freqShift: 0 }], // SD 1.x UNet
  [[978.5, 21.25], 320, { flipSinToCos: true, freqShift: 0 }],
  [[999, 5, 0, 500], 64, {}], // diffusers defaults: sin first, shift 1
  [[978.5, 21.25], 7, { freqShift: 0.5, scale: 2, maxPeriod: 100 }], // odd dim: zero column
  [[1.5, 3000.75], 33, { flipSinToCos: true, scale: 1.25 }],
];

describe('timestep embedding', () => {
  it.each(cases)('t=%j dim=%i %j matches float64 with f32 tolerances', async (ts, dim, opts) => {
    const rt = await runtime();
    const y = timestepEmbedding(Tensor.from(rt, ts, [ts.length]), dim, opts);
    expect(y.shape).toEqual([ts.length, dim]);
    const got = await y.toArray();
    const half = Math.floor(dim / 2);
    const torchLike = timestepEmbeddingRef(ts, dim, opts, true);
    let worst = 0;
    for (let i = 0; i < got.length; i++) {
      const [b, j] = [Math.floor(i / dim), i % dim];
      const arg = j < 2 * half ? torchLike.args[b * half + (j % half)] : 0;
      const err = Math.abs(got[i] - torchLike.emb[i]);
      const bound = 4 * ulp(arg) + 5e-7;
      worst = Math.max(worst, err / bound);
      expect(err, `element ${i} (arg ${arg})`).toBeLessThanOrEqual(bound);
    }
    const r32 = expectClose(got, torchLike.emb, { label: 'vs torch-like f32 reference', relL2: 1e-5 });
    const r64 = expectClose(got, timestepEmbeddingRef(ts, dim, opts).emb, { label: 'vs exact float64', relL2: 1e-4 });
    console.log(`t=${ts} dim=${dim}: relL2 vs f32-rounded ref ${r32.relL2.toExponential(2)} (max ${r32.maxAbs.toExponential(2)}, worst/bound ${worst.toFixed(2)}), vs exact f64 ${r64.relL2.toExponential(2)}`);
    if (dim % 2 === 1) for (let b = 0; b < ts.length; b++) expect(got[b * dim + dim - 1]).toBe(0);
  });

  it('rejects bad inputs', async () => {
    const rt = await runtime();
    expect(() => timestepEmbedding(Tensor.from(rt, [1, 2], [1, 2]), 8)).toThrow(ShapeError);
    expect(() => timestepEmbedding(Tensor.from(rt, [1], [1]), 0)).toThrow(InputError);
  });
});
