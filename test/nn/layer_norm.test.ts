import { describe, expect, it } from 'vitest';
import { layerNorm, layerNormBackward } from '../../src/nn/layer_norm.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { layerNormBackwardRef, layerNormRef } from '../../src/ref/layer_norm.js';
import { expectClose, finiteDiff, randomArray, randomTensor, requireF16, runtime, TOL } from '../helpers.js';

describe('layerNorm', () => {
  // CLIP's 768 (three strides of 256 threads), a ragged 37, and 2053 (past 8 per thread).
  it.each([
    [5, 768],
    [7, 37],
    [3, 2053],
  ])('forward rows=%i D=%i matches float64', async (rows, D) => {
    const rt = await runtime();
    const x = randomTensor(rt, [rows, D], D, -2, 3);
    const w = randomTensor(rt, [D], 1, 0.5, 1.5);
    const b = randomTensor(rt, [D], 2);
    const { y, mean, rstd } = layerNorm(x.t, w.t, b.t, 1e-5);
    const ref = layerNormRef(x.data, rows, D, w.data, b.data, 1e-5);
    expectClose(await y.toArray(), ref.y, { label: `layerNorm ${rows}x${D}`, relL2: TOL.reduction });
    expectClose(await mean.toArray(), ref.mean, { label: 'mean', relL2: TOL.reduction });
    expectClose(await rstd.toArray(), ref.rstd, { label: 'rstd', relL2: TOL.reduction });
  });

  it('keeps precision for a large mean (two-pass variance)', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [4, 768], 3, 500, 501);
    const w = randomTensor(rt, [768], 4, 0.5, 1.5);
    const b = randomTensor(rt, [768], 5);
    const { y } = layerNorm(x.t, w.t, b.t, 1e-6);
    expectClose(await y.toArray(), layerNormRef(x.data, 4, 768, w.data, b.data, 1e-6).y, { label: 'layerNorm mean 500', relL2: 1e-4 });
  });

  it.each([
    [6, 768],
    [9, 37],
  ])('backward rows=%i D=%i matches float64 and finite differences', async (rows, D) => {
    const rt = await runtime();
    const x = randomTensor(rt, [rows, D], 10 + D, -2, 2);
    const w = randomTensor(rt, [D], 11, 0.5, 1.5);
    const b = randomTensor(rt, [D], 12);
    const dy = randomTensor(rt, [rows, D], 13);
    const { mean, rstd } = layerNorm(x.t, w.t, b.t, 1e-5);
    const g = layerNormBackward(x.t, w.t, mean, rstd, dy.t);
    const ref = layerNormBackwardRef(x.data, rows, D, w.data, dy.data, 1e-5);
    expectClose(await g.dx.toArray(), ref.dx, { label: 'dx', relL2: TOL.reduction });
    expectClose(await g.dweight.toArray(), ref.dweight, { label: 'dweight', relL2: TOL.reduction });
    expectClose(await g.dbias.toArray(), ref.dbias, { label: 'dbias', relL2: TOL.reduction });
    // The analytic reference agrees with central differences of loss = <dy, layerNorm>.
    const loss = (xv: Float64Array, wv: ArrayLike<number>, bv: ArrayLike<number>) =>
      layerNormRef(xv, rows, D, wv, bv, 1e-5).y.reduce((s, v, i) => s + dy.data[i] * v, 0);
    const x64 = Float64Array.from(x.data);
    const ix = [0, D - 1, D + 3, rows * D - 1];
    const fdx = finiteDiff((v) => loss(v, w.data, b.data), x64, ix);
    ix.forEach((i, k) => expect(Math.abs(fdx[k] - ref.dx[i])).toBeLessThan(1e-6 * Math.max(1, Math.abs(ref.dx[i]))));
    const iw = [0, D - 1];
    const fdw = finiteDiff((v) => loss(x64, v, b.data), Float64Array.from(w.data), iw);
    iw.forEach((i, k) => expect(Math.abs(fdw[k] - ref.dweight[i])).toBeLessThan(1e-6 * Math.max(1, Math.abs(ref.dweight[i]))));
    const fdb = finiteDiff((v) => loss(x64, w.data, v), Float64Array.from(b.data), iw);
    iw.forEach((i, k) => expect(Math.abs(fdb[k] - ref.dbias[i])).toBeLessThan(1e-6 * Math.max(1, Math.abs(ref.dbias[i]))));
  });

  it('accumulates dweight and dbias into given tensors', async () => {
    const rt = await runtime();
    const rows = 5;
    const D = 37;
    const x = randomTensor(rt, [rows, D], 20);
    const w = randomTensor(rt, [D], 21, 0.5, 1.5);
    const b = randomTensor(rt, [D], 22);
    const dy = randomTensor(rt, [rows, D], 23);
    const dw0 = randomArray(D, 24);
    const db0 = randomArray(D, 25);
    const dweight = Tensor.from(rt, dw0, [D]);
    const dbias = Tensor.from(rt, db0, [D]);
    const { mean, rstd } = layerNorm(x.t, w.t, b.t, 1e-5);
    const g = layerNormBackward(x.t, w.t, mean, rstd, dy.t, { dweight, dbias, accumulate: true });
    expect(g.dweight).toBe(dweight);
    const ref = layerNormBackwardRef(x.data, rows, D, w.data, dy.data, 1e-5);
    expectClose(await dweight.toArray(), ref.dweight.map((v, i) => v + dw0[i]), { label: 'dweight += ', relL2: TOL.reduction });
    expectClose(await dbias.toArray(), ref.dbias.map((v, i) => v + db0[i]), { label: 'dbias += ', relL2: TOL.reduction });
  });

  it('folds more than 65535 rows into a 2-D grid', async () => {
    const rt = await runtime();
    const rows = 65600;
    const D = 5;
    const x = randomTensor(rt, [rows, D], 30);
    const w = randomTensor(rt, [D], 31, 0.5, 1.5);
    const b = randomTensor(rt, [D], 32);
    const dy = randomTensor(rt, [rows, D], 33);
    const { y, mean, rstd } = layerNorm(x.t, w.t, b.t, 1e-5);
    expectClose(await y.toArray(), layerNormRef(x.data, rows, D, w.data, b.data, 1e-5).y, { label: 'layerNorm 65600 rows', relL2: TOL.reduction });
    const g = layerNormBackward(x.t, w.t, mean, rstd, dy.t);
    const ref = layerNormBackwardRef(x.data, rows, D, w.data, dy.data, 1e-5);
    expectClose(await g.dx.toArray(), ref.dx, { label: 'dx 65600 rows', relL2: TOL.reduction });
    expectClose(await g.dweight.toArray(), ref.dweight, { label: 'dweight 65600 rows', relL2: TOL.reduction });
  });

  it('f16 storage matches float64 within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const xd = randomArray(3 * 77, 40, -2, 2);
    const wd = randomArray(77, 41, 0.5, 1.5);
    const bd = randomArray(77, 42);
    const { y } = layerNorm(Tensor.from(rt, xd, [3, 77], 'f16'), Tensor.from(rt, wd, [77], 'f16'), Tensor.from(rt, bd, [77], 'f16'), 1e-5);
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), layerNormRef(xd, 3, 77, wd, bd, 1e-5).y, { label: 'layerNorm f16', relL2: TOL.f16 });
  });
});
