import { describe, expect, it } from 'vitest';
import { spectralNorm, spectralNormBackward } from '../../src/nn/spectral_norm.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { spectralNormBackwardRef, spectralNormRef } from '../../src/ref/spectral_norm.js';
import { expectClose, finiteDiff, randomArray, randomTensor, runtime } from '../helpers.js';

describe('spectral_norm', () => {
  // [O, Cin, 3, 3] like SNConv2d; O not a multiple of the workgroup, K > 256 threads.
  it.each([[[7, 5, 3, 3], 1], [[37, 31, 3, 3], 1], [[300, 4, 3, 3], 3]] as const)('forward %j (%d iterations) matches float64; update stores u and sigma', async (shape, iters) => {
    const rt = await runtime();
    const O = shape[0];
    const { t: w, data: wd } = randomTensor(rt, [...shape], 1 + O, -1, 1);
    const u0d = randomArray(O, 2 + O);
    const u0 = Tensor.from(rt, u0d, [1, O]);
    const sv0 = Tensor.from(rt, new Float32Array([1]), [1]);
    const ref = spectralNormRef(wd, O, u0d, 1e-4, iters);
    const evalRes = spectralNorm(w, u0, { eps: 1e-4, iterations: iters });
    expectClose(await evalRes.sigma.toArray(), [ref.sigma], { label: 'sigma', relL2: 1e-6 });
    expectClose(await evalRes.weight.toArray(), ref.weight, { label: 'W / sigma', relL2: 1e-6 });
    expectClose(await evalRes.u.toArray(), ref.u, { label: 'u', relL2: 1e-6 });
    expectClose(await evalRes.v.toArray(), ref.v, { label: 'v', relL2: 1e-6 });
    // eval leaves the buffers alone; train stores u and sigma.
    expect(Array.from(await u0.toArray())).toEqual(Array.from(u0d));
    spectralNorm(w, u0, { eps: 1e-4, iterations: iters, update: { sv0 } });
    expectClose(await u0.toArray(), ref.u, { label: 'u0 after update', relL2: 1e-6 });
    expectClose(await sv0.toArray(), [ref.sigma], { label: 'sv0 after update', relL2: 1e-6 });
  });

  it('eps guards a zero weight (normalize divides by max(norm, eps))', async () => {
    const rt = await runtime();
    const w = Tensor.zeros(rt, [3, 2, 1, 1]);
    const res = spectralNorm(w, Tensor.from(rt, new Float32Array([1, 2, 3]), [1, 3]), { eps: 1e-4 });
    expect(Array.from(await res.u.toArray())).toEqual([0, 0, 0]);
    expect(Array.from(await res.sigma.toArray())).toEqual([0]);
  });

  it('backward matches float64 and finite differences of sum(G * W / sigma(W)); accumulates', async () => {
    const rt = await runtime();
    const O = 9;
    const shape = [O, 6, 3, 3];
    const { t: w, data: wd } = randomTensor(rt, shape, 31);
    const u0d = randomArray(O, 32);
    const { t: g, data: gd } = randomTensor(rt, shape, 33);
    const sn = spectralNorm(w, Tensor.from(rt, u0d, [1, O]), { eps: 1e-4 });
    const ref = spectralNormRef(wd, O, u0d, 1e-4);
    const dref = spectralNormBackwardRef(wd, ref, gd);
    const dw = spectralNormBackward(w, sn, g);
    expectClose(await dw.toArray(), dref, { label: 'dW', relL2: 1e-5 });
    // u and v are constants of the iteration: the loss sees sigma = u^T W v with them fixed.
    const loss = (x: Float64Array) => {
      let sigma = 0;
      const K = x.length / O;
      for (let i = 0; i < O; i++) for (let j = 0; j < K; j++) sigma += ref.u[i] * x[i * K + j] * ref.v[j];
      return x.reduce((s, xi, i) => s + gd[i] * (xi / sigma), 0);
    };
    const idx = [0, 77, 300, wd.length - 1];
    const fd = finiteDiff(loss, Float64Array.from(wd), idx);
    idx.forEach((i, k) => expect(Math.abs(fd[k] - dref[i])).toBeLessThan(1e-6 * Math.max(1, Math.abs(dref[i]))));
    spectralNormBackward(w, sn, g, { dweight: dw, accumulate: true });
    expectClose(await dw.toArray(), dref.map((x) => 2 * x), { label: 'dW accumulated', relL2: 1e-5 });
  });
});
