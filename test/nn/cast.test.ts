// cast: f32 -> f16 against the float64 binary16 rounding (each result must be one of the
// two f16 neighbours of its input, as WGSL allows; on lavapipe the nearest), f16 -> f32
// exact, for scalar and vec4 counts, values across the f16 range including subnormals,
// and a count whose workgroups fold past 65535.
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/gpu/errors.js';
import { cast } from '../../src/nn/cast.js';
import { castF16Ref, f16Neighbours } from '../../src/ref/cast.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { expectClose, randomArray, requireF16, rng, runtime } from '../helpers.js';

/** Values spread over f16's range: sign * 2^u with u uniform in [-24, 15.9] (subnormals to
 *  near 65504), plus exact f16 values and the range ends. */
function spread(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() < 0.5 ? -1 : 1) * 2 ** (-24 + 39.9 * r());
  out.set([65504, -65504, 2 ** -24, 1, -2048, 0.1], 0);
  return out;
}

function offNeighbour(actual: Float32Array, x: Float32Array): number[] {
  const bad: number[] = [];
  for (let i = 0; i < x.length && bad.length < 8; i++) {
    const [lo, hi] = f16Neighbours(x[i]);
    if (actual[i] !== lo && actual[i] !== hi) bad.push(i);
  }
  return bad;
}

describe('cast', () => {
  it.for([4099, 4096])('f32 -> f16 -> f32 of %i values rounds each to an f16 neighbour', async (n, ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const x = spread(n, n);
    const h = cast(Tensor.from(rt, x, [n]), 'f16');
    expect(h.dtype).toBe('f16');
    const back = cast(h, 'f32');
    expect(back.dtype).toBe('f32');
    const got = await back.toArray();
    expect(offNeighbour(got, x), 'elements not rounded to a neighbouring f16').toEqual([]);
    // Round to nearest (lavapipe and every GPU we know): equal to the float64 rounding.
    expectClose(got, castF16Ref(x), { label: `cast ${n} nearest`, relL2: 0 });
  });

  it('f16 -> f32 is exact', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const x = randomArray(3 * 7 * 5, 11, -3, 3);
    const y = cast(Tensor.from(rt, x, [3, 7, 5], 'f16'), 'f32');
    expect(y.shape).toEqual([3, 7, 5]);
    expectClose(await y.toArray(), castF16Ref(x), { label: 'widen', relL2: 0 });
  });

  it('folds more than 65535 workgroups', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const n = 256 * 65535 + 3; // scalar entry: 65536 workgroups of 256
    const x = randomArray(n, 12, -100, 100);
    const got = await cast(Tensor.from(rt, x, [n]), 'f16').toArray();
    expectClose(got, castF16Ref(x), { label: 'cast folded', relL2: 0 });
  });

  it('same dtype gives a view; non-float tensors are refused', async () => {
    const rt = await runtime();
    const t = Tensor.from(rt, [1, 2, 3, 4], [2, 2]);
    const v = cast(t, 'f32');
    t.dispose();
    expect(Array.from(await v.toArray())).toEqual([1, 2, 3, 4]);
    expect(() => cast(Tensor.from(rt, [1, 2], [2], 'i32'), 'f16')).toThrow(ShapeError);
  });
});
