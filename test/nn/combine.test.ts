import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { linearCombination } from '../../src/nn/combine.js';
import { expectClose, randomTensor, runtime, TOL } from '../helpers.js';

/** float64 reference: sum_i c_i x_i + k, optionally clamped. */
function combineRef(terms: [number, Float32Array][], k: number, range?: [number, number]): Float64Array {
  const n = terms[0][1].length;
  return Float64Array.from({ length: n }, (_, i) => {
    const v = terms.reduce((s, [c, x]) => s + c * x[i], k);
    return range ? Math.min(Math.max(v, range[0]), range[1]) : v;
  });
}

describe('linearCombination', () => {
  // 1001 elements take the scalar path, 2x4x9x9 (648) the vec4 one.
  it.each([
    [[7, 11, 13], 1],
    [[7, 11, 13], 2],
    [[7, 11, 13], 3],
    [[7, 11, 13], 4],
    [[2, 4, 9, 9], 1],
    [[2, 4, 9, 9], 4],
  ])('shape %j with %i terms', async (shape, count) => {
    const rt = await runtime();
    const coefs = [0.75, -1.3, 0.05, 2.5];
    const inputs = Array.from({ length: count }, (_, i) => randomTensor(rt, shape, 10 + i, -3, 3));
    const out = linearCombination(inputs.map((x, i) => [coefs[i], x.t]), 0.125);
    expect(out.shape).toEqual(shape);
    const ref = combineRef(inputs.map((x, i) => [coefs[i], x.data]), 0.125);
    expectClose(await out.toArray(), ref, { label: `combine ${count} terms`, relL2: TOL.elementwise });
  });

  it('clamps when asked (DDIM clip_sample), scalar and vec4 paths', async () => {
    const rt = await runtime();
    for (const shape of [[3, 67], [2, 64]]) {
      const a = randomTensor(rt, shape, 21, -2, 2);
      const b = randomTensor(rt, shape, 22, -2, 2);
      const out = linearCombination([[1.5, a.t], [-0.5, b.t]], 0, [-1, 1]);
      const ref = combineRef([[1.5, a.data], [-0.5, b.data]], 0, [-1, 1]);
      expectClose(await out.toArray(), ref, { label: `clamp ${shape}`, relL2: TOL.elementwise });
    }
  });

  it('crosses the 65535-workgroup limit along one axis', async () => {
    const rt = await runtime();
    const n = 65536 * 256 + 999; // 65540 workgroups of 256 on the scalar path
    const a = randomTensor(rt, [n], 31);
    const out = linearCombination([[-2, a.t]], 1);
    expectClose(await out.toArray(), combineRef([[-2, a.data]], 1), { label: 'combine 16.8M', relL2: TOL.elementwise });
    a.t.dispose();
    out.dispose();
  });

  it('rejects bad term lists with clear errors', async () => {
    const rt = await runtime();
    const a = randomTensor(rt, [4, 5], 41).t;
    const b = randomTensor(rt, [5, 4], 42).t;
    expect(() => linearCombination([])).toThrow(InputError);
    expect(() => linearCombination([[1, a], [1, a], [1, a], [1, a], [1, a]])).toThrow(/1\.\.4 terms/);
    expect(() => linearCombination([[1, a], [1, b]])).toThrow(ShapeError);
    expect(() => linearCombination([[NaN, a]])).toThrow(/not finite/);
  });
});
