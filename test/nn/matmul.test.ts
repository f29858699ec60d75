import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/gpu/errors.js';
import { linear, linearBackward, matmul } from '../../src/nn/matmul.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { linearBackwardRef, linearRef, matmulRef } from '../../src/ref/matmul.js';
import { expectClose, finiteDiff, randomArray, randomTensor, requireF16, runtime, TOL } from '../helpers.js';

// f16 storage with f32 accumulation: inputs and the output each round to 11 bits
// (relative 2^-11 ~ 4.9e-4 per value); measured rel L2 ~3e-4, checked against TOL.f16.
// K=4096 in f32 (DESIGN.md section 5).
const LONG_K_TOL = 1e-4;

describe('matmul', () => {
  // 67x131x45 takes the scalar load paths; 68x132x44 the vec4 ones (a along k, or
  // along m when transposed; b along n, or along k when transposed) with a half-filled
  // last row tile (68 = 8 * 8 + 4) and a partly filled last column tile.
  it.each([
    [67, 131, 45, false, false],
    [67, 131, 45, true, false],
    [67, 131, 45, false, true],
    [67, 131, 45, true, true],
    [68, 132, 44, false, false],
    [68, 132, 44, true, false],
    [68, 132, 44, false, true],
    [68, 132, 44, true, true],
  ])('ragged MxKxN %ix%ix%i transA=%s transB=%s', async (M, K, N, transA, transB) => {
    const rt = await runtime();
    const a = randomTensor(rt, transA ? [K, M] : [M, K], 1);
    const b = randomTensor(rt, transB ? [N, K] : [K, N], 2);
    const c = matmul(a.t, b.t, { transA, transB });
    expect(c.shape).toEqual([M, N]);
    const ref = matmulRef(a.data, b.data, 1, M, N, K, { transA, transB });
    expectClose(await c.toArray(), ref, { label: `matmul tA=${transA} tB=${transB}`, relL2: TOL.matmul });
  });

  it('linear 1x77x768 -> 768 with bias (CLIP-like row count)', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [1, 77, 768], 3);
    const w = randomTensor(rt, [768, 768], 4, -0.05, 0.05);
    const bias = randomTensor(rt, [768], 5);
    const y = linear(x.t, w.t, bias.t);
    expect(y.shape).toEqual([1, 77, 768]);
    expectClose(await y.toArray(), linearRef(x.data, w.data, bias.data, 77, 768, 768), { label: 'linear 77x768x768', relL2: TOL.matmul });
  });

  it('batched a with a broadcast 2-D b, and a 2-D a with batched transposed b', async () => {
    const rt = await runtime();
    const [M, K, N] = [37, 29, 70];
    const a = randomTensor(rt, [3, 2, M, K], 6);
    const b = randomTensor(rt, [K, N], 7);
    const c = matmul(a.t, b.t);
    expect(c.shape).toEqual([3, 2, M, N]);
    expectClose(await c.toArray(), matmulRef(a.data, b.data, 6, M, N, K, { bBatched: false }), { label: 'broadcast b', relL2: TOL.matmul });

    const a2 = randomTensor(rt, [M, K], 8);
    const b2 = randomTensor(rt, [5, N, K], 9);
    const c2 = matmul(a2.t, b2.t, { transB: true });
    expect(c2.shape).toEqual([5, M, N]);
    expectClose(await c2.toArray(), matmulRef(a2.data, b2.data, 5, M, N, K, { aBatched: false, transB: true }), { label: 'broadcast a', relL2: TOL.matmul });
  });

  it('same batch dims on both operands, transA (vec4 a with a scalar k tail)', async () => {
    const rt = await runtime();
    const [Z, M, K, N] = [4, 20, 23, 9];
    const a = randomTensor(rt, [Z, K, M], 10);
    const b = randomTensor(rt, [Z, K, N], 11);
    const c = matmul(a.t, b.t, { transA: true });
    expectClose(await c.toArray(), matmulRef(a.data, b.data, Z, M, N, K, { transA: true }), { label: 'batched tA', relL2: TOL.matmul });
  });

  // One activation here (gelu, the erf one); the f16 case fuses silu. Each activation
  // is a separate pipeline, and compiling them all on lavapipe costs seconds each.
  it('epilogue alpha * AB + bias -> gelu -> + residual', async () => {
    const activation = 'gelu';
    const rt = await runtime();
    const [Z, M, K, N] = [2, 21, 50, 83];
    const a = randomTensor(rt, [Z, M, K], 12);
    const b = randomTensor(rt, [N, K], 13);
    const bias = randomTensor(rt, [N], 14);
    const residual = randomTensor(rt, [Z, M, N], 15);
    const c = matmul(a.t, b.t, { transB: true, bias: bias.t, activation, alpha: 0.3, residual: residual.t });
    const ref = matmulRef(a.data, b.data, Z, M, N, K, {
      transB: true, bBatched: false, bias: bias.data, activation, alpha: 0.3, residual: residual.data,
    });
    expectClose(await c.toArray(), ref, { label: `epilogue ${activation}`, relL2: TOL.matmul });
  });

  it('accumulates into out, and writes into out without accumulate', async () => {
    const rt = await runtime();
    const [M, K, N] = [13, 40, 31];
    const a = randomTensor(rt, [M, K], 16);
    const b = randomTensor(rt, [K, N], 17);
    const init = randomArray(M * N, 18);
    const out = Tensor.from(rt, init, [M, N]);
    const c = matmul(a.t, b.t, { out, accumulate: true });
    expect(c).toBe(out);
    expectClose(await out.toArray(), matmulRef(a.data, b.data, 1, M, N, K, { accumulate: init }), { label: 'accumulate', relL2: TOL.matmul });
    matmul(a.t, b.t, { out });
    expectClose(await out.toArray(), matmulRef(a.data, b.data, 1, M, N, K), { label: 'out', relL2: TOL.matmul });
  });

  it('K=4096 stays within 1e-4', async () => {
    const rt = await runtime();
    const [M, K, N] = [9, 4096, 35];
    const a = randomTensor(rt, [M, K], 19);
    const b = randomTensor(rt, [K, N], 20);
    const c = matmul(a.t, b.t);
    expectClose(await c.toArray(), matmulRef(a.data, b.data, 1, M, N, K), { label: 'K=4096', relL2: LONG_K_TOL });
  });

  it('batch of 70000 tiny matrices crosses the 65535-workgroup limit', async () => {
    const rt = await runtime();
    const [Z, M, K, N] = [70000, 3, 5, 2];
    expect(Z).toBeGreaterThan(rt.limits.maxComputeWorkgroupsPerDimension);
    const a = randomTensor(rt, [Z, M, K], 21);
    const b = randomTensor(rt, [Z, K, N], 22);
    const c = matmul(a.t, b.t);
    expectClose(await c.toArray(), matmulRef(a.data, b.data, Z, M, N, K), { label: 'batch 70000', relL2: TOL.matmul });
  });

  it('f16 storage with f32 accumulation', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const [M, K, N] = [45, 300, 67];
    const ad = randomArray(M * K, 23);
    const bd = randomArray(N * K, 24);
    const biasd = randomArray(N, 25);
    const a = Tensor.from(rt, ad, [M, K], 'f16');
    const b = Tensor.from(rt, bd, [N, K], 'f16');
    const bias = Tensor.from(rt, biasd, [N], 'f16');
    const c = matmul(a, b, { transB: true, bias, activation: 'silu' });
    expect(c.dtype).toBe('f16');
    const ref = matmulRef(ad, bd, 1, M, N, K, { transB: true, bias: biasd, activation: 'silu' });
    expectClose(await c.toArray(), ref, { label: 'f16 linear+silu', relL2: TOL.f16 });
  });

  it('rejects mismatched shapes with a ShapeError', async () => {
    const rt = await runtime();
    const a = Tensor.zeros(rt, [4, 5]);
    expect(() => matmul(a, Tensor.zeros(rt, [6, 3]))).toThrow(ShapeError);
    expect(() => matmul(Tensor.zeros(rt, [2, 4, 5]), Tensor.zeros(rt, [3, 5, 3]))).toThrow(ShapeError);
    expect(() => matmul(a, Tensor.zeros(rt, [5, 3]), { bias: Tensor.zeros(rt, [4]) })).toThrow(ShapeError);
  });
});

describe('linearBackward', () => {
  const [B, T, IN, OUT] = [2, 7, 33, 19];
  const R = B * T;

  it('matches the float64 backward and central differences of sum(dy * linear(x))', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [B, T, IN], 31);
    const w = randomTensor(rt, [OUT, IN], 32);
    const bias = randomTensor(rt, [OUT], 33);
    const dy = randomTensor(rt, [B, T, OUT], 34);
    const g = linearBackward(x.t, w.t, dy.t, { bias: true });
    expect(g.dx.shape).toEqual([B, T, IN]);
    expect(g.dweight.shape).toEqual([OUT, IN]);
    const ref = linearBackwardRef(x.data, w.data, dy.data, R, IN, OUT);
    expectClose(await g.dx.toArray(), ref.dx, { label: 'dx', relL2: TOL.matmul });
    expectClose(await g.dweight.toArray(), ref.dweight, { label: 'dweight', relL2: TOL.matmul });
    expectClose(await g.dbias!.toArray(), ref.dbias, { label: 'dbias', relL2: TOL.reduction });

    // The analytic reference agrees with central differences of the forward reference.
    const loss = (xv: ArrayLike<number>, wv: ArrayLike<number>, bv: ArrayLike<number>) =>
      linearRef(xv, wv, bv, R, IN, OUT).reduce((s, y, i) => s + dy.data[i] * y, 0);
    const x64 = Float64Array.from(x.data);
    const w64 = Float64Array.from(w.data);
    const b64 = Float64Array.from(bias.data);
    const check = (fd: number[], exact: Float64Array, idx: number[]) =>
      idx.forEach((i, k) => expect(Math.abs(fd[k] - exact[i])).toBeLessThan(1e-6 * Math.max(1, Math.abs(exact[i]))));
    const ix = [0, 100, R * IN - 1];
    check(finiteDiff((v) => loss(v, w64, b64), x64, ix), ref.dx, ix);
    const iw = [0, 55, OUT * IN - 1];
    check(finiteDiff((v) => loss(x64, v, b64), w64, iw), ref.dweight, iw);
    const ib = [0, OUT - 1];
    check(finiteDiff((v) => loss(x64, w64, v), b64, ib), ref.dbias, ib);
  });

  it('accumulates into given dweight and dbias', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [R, IN], 41);
    const w = randomTensor(rt, [OUT, IN], 42);
    const dy = randomTensor(rt, [R, OUT], 43);
    const dw0 = randomArray(OUT * IN, 44);
    const db0 = randomArray(OUT, 45);
    const dweight = Tensor.from(rt, dw0, [OUT, IN]);
    const dbias = Tensor.from(rt, db0, [OUT]);
    const g = linearBackward(x.t, w.t, dy.t, { dweight, dbias, accumulate: true });
    expect(g.dweight).toBe(dweight);
    expect(g.dbias).toBe(dbias);
    const ref = linearBackwardRef(x.data, w.data, dy.data, R, IN, OUT);
    expectClose(await dweight.toArray(), ref.dweight.map((v, i) => v + dw0[i]), { label: 'dweight += ', relL2: TOL.matmul });
    expectClose(await dbias.toArray(), ref.dbias.map((v, i) => v + db0[i]), { label: 'dbias += ', relL2: TOL.reduction });
  });
});
