import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/gpu/errors.js';
import { patchUnfold, patchUnfoldBackward } from '../../src/nn/unfold.js';
import { patchUnfoldBackwardRef, patchUnfoldRef } from '../../src/ref/unfold.js';
import { expectClose, finiteDiff, randomArray, randomTensor, runtime } from '../helpers.js';

// p = 4 and 8 take the vec4 path, 3 and 1 the scalar one.
const cases: [[number, number, number, number], number][] = [
  [[2, 3, 8, 12], 4],
  [[1, 2, 16, 8], 8],
  [[1, 5, 6, 9], 3],
  [[2, 2, 5, 7], 1],
  [[1, 240, 16, 16], 4], // the grounding decoder's layout (F is 240 x 64 x 64 at full size)
];

describe('patch unfold', () => {
  it.each(cases)('forward %j p=%i matches float64', async (shape, p) => {
    const rt = await runtime();
    const x = randomTensor(rt, shape, 1);
    const y = patchUnfold(x.t, p);
    const [n, c, h, w] = shape;
    expect(y.shape).toEqual([n, (h / p) * (w / p), c * p * p]);
    expectClose(await y.toArray(), patchUnfoldRef(x.data, shape, p), { label: `unfold ${shape} p=${p}`, relL2: 0 });
  });

  it.each(cases)('backward %j p=%i matches the float64 adjoint and round-trips', async (shape, p) => {
    const rt = await runtime();
    const [n, c, h, w] = shape;
    const dy = randomTensor(rt, [n, (h / p) * (w / p), c * p * p], 2);
    const dx = patchUnfoldBackward(dy.t, shape, p);
    expect(dx.shape).toEqual(shape);
    expectClose(await dx.toArray(), patchUnfoldBackwardRef(dy.data, shape, p), { label: `unfold backward ${shape}`, relL2: 0 });
    // The unfold is a bijection: backward(forward(x)) == x.
    const x = randomTensor(rt, shape, 3);
    expectClose(await patchUnfoldBackward(patchUnfold(x.t, p), shape, p).toArray(), x.data, { label: 'round trip', relL2: 0 });
  });

  it('the adjoint agrees with finite differences of the forward', () => {
    const shape: [number, number, number, number] = [1, 3, 6, 9];
    const p = 3;
    const x = Float64Array.from(randomArray(162, 4));
    const dy = randomArray(162, 5);
    const loss = (v: Float64Array) => patchUnfoldRef(v, shape, p).reduce((s, y, i) => s + dy[i] * y, 0);
    const grad = patchUnfoldBackwardRef(dy, shape, p);
    const idx = [0, 7, 40, 100, 161];
    const fd = finiteDiff(loss, x, idx);
    idx.forEach((i, k) => expect(Math.abs(fd[k] - grad[i]), `index ${i}`).toBeLessThan(1e-8));
  });

  it('rejects sizes not divisible by the patch', async () => {
    const rt = await runtime();
    expect(() => patchUnfold(randomTensor(rt, [1, 2, 6, 7], 6).t, 2)).toThrow(ShapeError);
    expect(() => patchUnfoldBackward(randomTensor(rt, [1, 9, 7], 7).t, [1, 2, 6, 6], 2)).toThrow(ShapeError);
  });
});
