import { describe, expect, it } from 'vitest';
import { batchNorm, batchNormBackward } from '../../src/nn/batch_norm.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { batchNormBackwardRef, batchNormRef, type BatchNormRefOpts } from '../../src/ref/batch_norm.js';
import { expectClose, finiteDiff, randomArray, randomTensor, runtime, TOL } from '../helpers.js';

const cases = [
  // [N, C, H, W, affine]: ragged spatial; a 64x64 map (one 4096-position chunk per plane).
  [3, 5, 7, 9, true],
  [2, 4, 64, 64, false],
  [2, 3, 65, 63, true],
] as const;

describe('batchNorm', () => {
  it.each(cases)('training N=%i C=%i %ix%i affine=%s: forward, running stats, backward', async (N, C, H, W, affine) => {
    const rt = await runtime();
    const S = H * W;
    const x = randomTensor(rt, [N, C, H, W], S + C, -1, 3);
    const rm = randomTensor(rt, [C], 1);
    const rv = randomTensor(rt, [C], 2, 0.5, 2);
    const w = affine ? randomTensor(rt, [C], 3, 0.5, 1.5) : undefined;
    const b = affine ? randomTensor(rt, [C], 4) : undefined;
    const o: BatchNormRefOpts = { training: true, runningMean: rm.data, runningVar: rv.data, momentum: 0.1, eps: 1e-4, weight: w?.data, bias: b?.data };
    const { y, mean, rstd } = batchNorm(x.t, { training: true, runningMean: rm.t, runningVar: rv.t, eps: 1e-4, weight: w?.t, bias: b?.t });
    const ref = batchNormRef(x.data, N, C, S, o);
    expectClose(await y.toArray(), ref.y, { label: 'y', relL2: TOL.reduction });
    expectClose(await mean.toArray(), ref.mean, { label: 'mean', relL2: TOL.reduction });
    expectClose(await rstd.toArray(), ref.rstd, { label: 'rstd', relL2: TOL.reduction });
    expectClose(await rm.t.toArray(), ref.runningMean, { label: 'running mean', relL2: TOL.reduction });
    expectClose(await rv.t.toArray(), ref.runningVar, { label: 'running var', relL2: TOL.reduction });

    const dy = randomTensor(rt, [N, C, H, W], 5);
    const g = batchNormBackward(x.t, mean, rstd, dy.t, { training: true, weight: w?.t });
    const gref = batchNormBackwardRef(x.data, dy.data, N, C, S, o);
    expectClose(await g.dx.toArray(), gref.dx, { label: 'dx', relL2: TOL.reduction });
    if (affine) {
      expectClose(await (g.dweight as Tensor).toArray(), gref.dweight, { label: 'dweight', relL2: TOL.reduction });
      expectClose(await (g.dbias as Tensor).toArray(), gref.dbias, { label: 'dbias', relL2: TOL.reduction });
    } else {
      expect(g.dweight).toBeUndefined();
    }
  });

  it('training backward agrees with central differences of the float64 forward', () => {
    // Small enough that the reference's full loss is cheap to evaluate per probe.
    const [N, C, S] = [2, 3, 10];
    const r = (n: number, seed: number, lo = -1, hi = 1) => Float64Array.from(randomArray(n, seed, lo, hi));
    const x = r(N * C * S, 1);
    const dy = r(N * C * S, 2);
    const o: BatchNormRefOpts = { training: true, runningMean: r(C, 3), runningVar: r(C, 4, 0.5, 2), momentum: 0.1, eps: 1e-4, weight: r(C, 5, 0.5, 1.5), bias: r(C, 6) };
    const loss = (xv: Float64Array, ov: BatchNormRefOpts) => batchNormRef(xv, N, C, S, ov).y.reduce((s, v, i) => s + dy[i] * v, 0);
    const g = batchNormBackwardRef(x, dy, N, C, S, o);
    const idx = [0, 7, S + 3, N * C * S - 1];
    finiteDiff((v) => loss(v, o), x, idx).forEach((fd, k) => expect(Math.abs(fd - g.dx[idx[k]])).toBeLessThan(1e-6));
    const cs = [0, C - 1];
    finiteDiff((v) => loss(x, { ...o, weight: v }), Float64Array.from(o.weight as Float64Array), cs)
      .forEach((fd, k) => expect(Math.abs(fd - g.dweight[cs[k]])).toBeLessThan(1e-6));
    finiteDiff((v) => loss(x, { ...o, bias: v }), Float64Array.from(o.bias as Float64Array), cs)
      .forEach((fd, k) => expect(Math.abs(fd - g.dbias[cs[k]])).toBeLessThan(1e-6));
    const oe = { ...o, training: false };
    const ge = batchNormBackwardRef(x, dy, N, C, S, oe);
    finiteDiff((v) => loss(v, oe), x, idx).forEach((fd, k) => expect(Math.abs(fd - ge.dx[idx[k]])).toBeLessThan(1e-6));
  });

  it.each([true, false])('eval uses running stats (affine=%s), leaves them unchanged, dx = dy * rstd * weight', async (affine) => {
    const rt = await runtime();
    const [N, C, H, W] = [2, 6, 5, 11];
    const S = H * W;
    const x = randomTensor(rt, [N, C, H, W], 20, -2, 2);
    const rm = randomTensor(rt, [C], 21);
    const rv = randomTensor(rt, [C], 22, 0.5, 2);
    const w = affine ? randomTensor(rt, [C], 23, 0.5, 1.5) : undefined;
    const b = affine ? randomTensor(rt, [C], 24) : undefined;
    const o: BatchNormRefOpts = { training: false, runningMean: rm.data, runningVar: rv.data, momentum: 0.1, eps: 1e-5, weight: w?.data, bias: b?.data };
    const { y, mean, rstd } = batchNorm(x.t, { training: false, runningMean: rm.t, runningVar: rv.t, weight: w?.t, bias: b?.t });
    expectClose(await y.toArray(), batchNormRef(x.data, N, C, S, o).y, { label: 'eval y', relL2: TOL.reduction });
    expect(Array.from(await rm.t.toArray())).toEqual(Array.from(rm.data));
    expect(Array.from(await rv.t.toArray())).toEqual(Array.from(rv.data));
    const dy = randomTensor(rt, [N, C, H, W], 25);
    const g = batchNormBackward(x.t, mean, rstd, dy.t, { training: false, weight: w?.t });
    const gref = batchNormBackwardRef(x.data, dy.data, N, C, S, o);
    expectClose(await g.dx.toArray(), gref.dx, { label: 'eval dx', relL2: TOL.reduction });
    if (affine) expectClose(await (g.dweight as Tensor).toArray(), gref.dweight, { label: 'eval dweight', relL2: TOL.reduction });
  });

  it('folds more than 65535 plane workgroups into a 2-D grid', async () => {
    const rt = await runtime();
    const [N, C, S] = [16400, 4, 3];
    const x = randomTensor(rt, [N, C, S, 1], 30);
    const rm = randomTensor(rt, [C], 31);
    const rv = randomTensor(rt, [C], 32, 0.5, 2);
    const o: BatchNormRefOpts = { training: true, runningMean: rm.data, runningVar: rv.data, momentum: 0.1, eps: 1e-5 };
    const { y, mean, rstd } = batchNorm(x.t, { training: true, runningMean: rm.t, runningVar: rv.t });
    expectClose(await y.toArray(), batchNormRef(x.data, N, C, S, o).y, { label: 'y 65600 planes', relL2: TOL.reduction });
    const dy = randomTensor(rt, [N, C, S, 1], 33);
    const dx = await batchNormBackward(x.t, mean, rstd, dy.t, { training: true }).dx.toArray();
    expectClose(dx, batchNormBackwardRef(x.data, dy.data, N, C, S, o).dx, { label: 'dx 65600 planes', relL2: TOL.reduction });
  });
});
