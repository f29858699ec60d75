import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { resizeBilinear, resizeBilinearBackward, upsampleNearest2x } from '../../src/nn/resize.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { bilinearBackwardRef, bilinearRef, nearest2xRef } from '../../src/ref/resize.js';
import { expectClose, finiteDiff, randomArray, randomTensor, requireF16, runtime, TOL } from '../helpers.js';

describe('resize', () => {
  it.each([
    [[2, 3, 5, 7]],
    [[1, 4, 8, 8]],
  ])('nearest 2x of %j is exact', async (shape) => {
    const rt = await runtime();
    const x = randomTensor(rt, shape, 1);
    const y = upsampleNearest2x(x.t);
    expect(y.shape).toEqual([shape[0], shape[1], 2 * shape[2], 2 * shape[3]]);
    expectClose(await y.toArray(), nearest2xRef(x.data, shape), { label: `nearest ${shape}`, relL2: 0 });
  });

  it('nearest 2x past the binding limit runs in plane runs', async () => {
    const rt = await runtime();
    // Output [1,33,1024,1024] f32 = 132 MiB > 128 MiB: two runs of planes.
    const [c, h, w] = [33, 512, 512];
    const x = randomTensor(rt, [1, c, h, w], 2);
    const yt = upsampleNearest2x(x.t);
    expect(yt.bytes).toBeGreaterThan(rt.limits.maxStorageBufferBindingSize);
    const y = await yt.toArray();
    let bad = -1;
    for (let i = 0; i < y.length && bad < 0; i++) {
      const ox = i % (2 * w);
      const r = (i - ox) / (2 * w);
      const oy = r % (2 * h);
      const pl = (r - oy) / (2 * h);
      if (y[i] !== x.data[(pl * h + (oy >> 1)) * w + (ox >> 1)]) bad = i;
    }
    expect(bad, 'first wrong element').toBe(-1);
    x.t.dispose();
    yt.dispose();
  });

  // Up (8->16, 16->32, 64->512), non-integer ratios both ways, non-square, downsampling.
  const cases: [number[], number, number][] = [
    [[2, 3, 8, 8], 16, 16],
    [[1, 2, 16, 16], 32, 32],
    [[1, 2, 64, 64], 512, 512],
    [[2, 3, 5, 5], 7, 7],
    [[2, 3, 7, 7], 5, 5],
    [[1, 3, 5, 9], 7, 4],
    [[1, 2, 32, 24], 8, 6],
  ];

  it.each(cases)('bilinear %j -> %ix%i matches float64', async (shape, oh, ow) => {
    const rt = await runtime();
    const x = randomTensor(rt, shape, 3);
    const y = resizeBilinear(x.t, oh, ow);
    expect(y.shape).toEqual([shape[0], shape[1], oh, ow]);
    expectClose(await y.toArray(), bilinearRef(x.data, shape, oh, ow), { label: `bilinear ${shape}->${oh}x${ow}`, relL2: TOL.elementwise });
  });

  it.each(cases)('bilinear backward %j -> %ix%i matches the float64 adjoint', async (shape, oh, ow) => {
    const rt = await runtime();
    const dyShape = [shape[0], shape[1], oh, ow];
    const dy = randomTensor(rt, dyShape, 4);
    const dx = resizeBilinearBackward(dy.t, shape[2], shape[3]);
    expect(dx.shape).toEqual(shape);
    expectClose(await dx.toArray(), bilinearBackwardRef(dy.data, dyShape, shape[2], shape[3]), {
      label: `bilinear backward ${shape}->${oh}x${ow}`,
      relL2: TOL.reduction,
    });
  });

  it.each(cases.slice(0, 2).concat(cases.slice(3)))('bilinear adjoint %j -> %ix%i agrees with finite differences', (shape, oh, ow) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const x = Float64Array.from(randomArray(n, 5));
    const dyShape = [shape[0], shape[1], oh, ow];
    const dy = randomArray(dyShape.reduce((a, b) => a * b, 1), 6);
    const loss = (v: Float64Array) => bilinearRef(v, shape, oh, ow).reduce((s, y, i) => s + dy[i] * y, 0);
    const grad = bilinearBackwardRef(dy, dyShape, shape[2], shape[3]);
    const idx = [0, shape[3] - 1, Math.floor(n / 2), n - shape[3], n - 1];
    const fd = finiteDiff(loss, x, idx);
    idx.forEach((i, k) => expect(Math.abs(fd[k] - grad[i]), `index ${i}`).toBeLessThan(1e-7 * Math.max(1, Math.abs(grad[i]))));
  });

  it('f16: nearest is exact, bilinear forward and backward stay within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const shape = [1, 3, 6, 10];
    const data = randomArray(180, 7);
    const x = Tensor.from(rt, data, shape, 'f16');
    const up = upsampleNearest2x(x);
    expect(up.dtype).toBe('f16');
    expectClose(await up.toArray(), nearest2xRef(await x.toArray(), shape), { label: 'nearest f16', relL2: 0 });
    const y = resizeBilinear(x, 9, 4);
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), bilinearRef(data, shape, 9, 4), { label: 'bilinear f16', relL2: TOL.f16 });
    // Rows of 4 take the vec4 entry above; rows of 6 the per-pixel one.
    expectClose(await resizeBilinear(x, 9, 6).toArray(), bilinearRef(data, shape, 9, 6), { label: 'bilinear f16 per pixel', relL2: TOL.f16 });
    const dyData = randomArray(3 * 9 * 4, 8);
    const dx = resizeBilinearBackward(Tensor.from(rt, dyData, [1, 3, 9, 4], 'f16'), 6, 10);
    expectClose(await dx.toArray(), bilinearBackwardRef(dyData, [1, 3, 9, 4], 6, 10), { label: 'bilinear backward f16', relL2: TOL.f16 });
  });

  it('rejects bad shapes and sizes', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [2, 3, 4], 9).t;
    expect(() => upsampleNearest2x(x)).toThrow(ShapeError);
    expect(() => resizeBilinear(randomTensor(rt, [1, 1, 2, 2], 10).t, 0, 3)).toThrow(InputError);
  });
});
