// The matmul variants other adapters pick (gpu/variants.ts), forced on this one and
// checked against the float64 reference: 'tiled' (shaders/matmul_tiled.wgsl), which a
// hardware adapter runs, with every flag of the production matmul. Each case asserts
// that the forced kernel is the one that ran.
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.js';
import { linearBackward, matmul } from '../../src/nn/matmul.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { linearBackwardRef, matmulRef } from '../../src/ref/matmul.js';
import { expectClose, randomArray, randomTensor, requireF16, runtime, TOL } from '../helpers.js';
import { forced } from './forced.js';

const LONG_K_TOL = 1e-4;

/** Runs fn with the tiled variant forced; only its kernel may record a product. */
const tiled = <R>(rt: Runtime, fn: () => R): R =>
  forced(rt, { matmul: 'tiled' }, { watch: ['matmul_'], families: ['matmul_tiled'], except: ['matmul_backward_bias'] }, fn);

describe('matmul variant tiled (forced)', () => {
  it('the software adapter keeps rows8 unless forced', async () => {
    const rt = await runtime();
    if (rt.gpu.report.isFallbackAdapter) expect(rt.variants.defaults.matmul).toBe('rows8');
    else expect(rt.variants.defaults.matmul).toBe('tiled');
    expect(rt.variants.matmul).toBe(rt.variants.defaults.matmul);
  });

  // Odd sizes take the scalar tile loads, multiples of 4 the vec4 ones; every size
  // leaves partial row, column and k tiles (64 rows, 64 columns, 16 k). M >= 1024 takes
  // the 128-row tiles (8 rows per thread).
  it.each([
    [67, 131, 75, false, false],
    [67, 131, 75, true, false],
    [67, 131, 75, false, true],
    [67, 131, 75, true, true],
    [68, 132, 76, false, false],
    [68, 132, 76, true, false],
    [68, 132, 76, false, true],
    [68, 132, 76, true, true],
    [1030, 37, 70, false, false],
    [1030, 37, 70, true, true],
    [1032, 36, 68, true, false],
    [1032, 36, 68, false, true],
  ])('ragged MxKxN %ix%ix%i transA=%s transB=%s', async (M, K, N, transA, transB) => {
    const rt = await runtime();
    const a = randomTensor(rt, transA ? [K, M] : [M, K], 1);
    const b = randomTensor(rt, transB ? [N, K] : [K, N], 2);
    const c = tiled(rt, () => matmul(a.t, b.t, { transA, transB }));
    expect(c.shape).toEqual([M, N]);
    const ref = matmulRef(a.data, b.data, 1, M, N, K, { transA, transB });
    expectClose(await c.toArray(), ref, { label: `tiled ${M}x${K}x${N} tA=${transA} tB=${transB}`, relL2: TOL.matmul });
  });

  it('broadcasts a 2-D operand over the batch, both ways', async () => {
    const rt = await runtime();
    const [M, K, N] = [37, 29, 70];
    const a = randomTensor(rt, [3, 2, M, K], 6);
    const b = randomTensor(rt, [K, N], 7);
    const c = tiled(rt, () => matmul(a.t, b.t));
    expect(c.shape).toEqual([3, 2, M, N]);
    expectClose(await c.toArray(), matmulRef(a.data, b.data, 6, M, N, K, { bBatched: false }), { label: 'broadcast b', relL2: TOL.matmul });

    const a2 = randomTensor(rt, [M, K], 8);
    const b2 = randomTensor(rt, [5, N, K], 9);
    const c2 = tiled(rt, () => matmul(a2.t, b2.t, { transB: true }));
    expect(c2.shape).toEqual([5, M, N]);
    expectClose(await c2.toArray(), matmulRef(a2.data, b2.data, 5, M, N, K, { aBatched: false, transB: true }), { label: 'broadcast a', relL2: TOL.matmul });
  });

  it('batched transA with a vec4 m axis and a k tail', async () => {
    const rt = await runtime();
    const [Z, M, K, N] = [4, 20, 23, 9];
    const a = randomTensor(rt, [Z, K, M], 10);
    const b = randomTensor(rt, [Z, K, N], 11);
    const c = tiled(rt, () => matmul(a.t, b.t, { transA: true }));
    expectClose(await c.toArray(), matmulRef(a.data, b.data, Z, M, N, K, { transA: true }), { label: 'batched tA', relL2: TOL.matmul });
  });

  it('epilogue alpha * AB + bias -> gelu -> + residual', async () => {
    const rt = await runtime();
    const [Z, M, K, N] = [2, 21, 50, 83];
    const a = randomTensor(rt, [Z, M, K], 12);
    const b = randomTensor(rt, [N, K], 13);
    const bias = randomTensor(rt, [N], 14);
    const residual = randomTensor(rt, [Z, M, N], 15);
    const c = tiled(rt, () => matmul(a.t, b.t, { transB: true, bias: bias.t, activation: 'gelu', alpha: 0.3, residual: residual.t }));
    const ref = matmulRef(a.data, b.data, Z, M, N, K, {
      transB: true, bBatched: false, bias: bias.data, activation: 'gelu', alpha: 0.3, residual: residual.data,
    });
    expectClose(await c.toArray(), ref, { label: 'tiled epilogue gelu', relL2: TOL.matmul });
  });

  it('accumulates into out, and writes into out without accumulate', async () => {
    const rt = await runtime();
    const [M, K, N] = [13, 40, 31];
    const a = randomTensor(rt, [M, K], 16);
    const b = randomTensor(rt, [K, N], 17);
    const init = randomArray(M * N, 18);
    const out = Tensor.from(rt, init, [M, N]);
    tiled(rt, () => matmul(a.t, b.t, { out, accumulate: true }));
    expectClose(await out.toArray(), matmulRef(a.data, b.data, 1, M, N, K, { accumulate: init }), { label: 'tiled accumulate', relL2: TOL.matmul });
    tiled(rt, () => matmul(a.t, b.t, { out }));
    expectClose(await out.toArray(), matmulRef(a.data, b.data, 1, M, N, K), { label: 'tiled out', relL2: TOL.matmul });
  });

  it('linearBackward (dy W and the transposed dy^T x) under the variant', async () => {
    const rt = await runtime();
    const [R, IN, OUT] = [14, 33, 19];
    const x = randomTensor(rt, [R, IN], 31);
    const w = randomTensor(rt, [OUT, IN], 32);
    const dy = randomTensor(rt, [R, OUT], 34);
    const g = tiled(rt, () => linearBackward(x.t, w.t, dy.t, { bias: true }));
    const ref = linearBackwardRef(x.data, w.data, dy.data, R, IN, OUT);
    expectClose(await g.dx.toArray(), ref.dx, { label: 'tiled dx', relL2: TOL.matmul });
    expectClose(await g.dweight.toArray(), ref.dweight, { label: 'tiled dweight', relL2: TOL.matmul });
  });

  it('K=4096 stays within 1e-4', async () => {
    const rt = await runtime();
    const [M, K, N] = [9, 4096, 35];
    const a = randomTensor(rt, [M, K], 19);
    const b = randomTensor(rt, [K, N], 20);
    const c = tiled(rt, () => matmul(a.t, b.t));
    expectClose(await c.toArray(), matmulRef(a.data, b.data, 1, M, N, K), { label: 'tiled K=4096', relL2: LONG_K_TOL });
  });

  it('a batch past the 65535-workgroup limit folds into a 2-D grid', async () => {
    const rt = await runtime();
    const [Z, M, K, N] = [66000, 2, 3, 2];
    expect(Z).toBeGreaterThan(rt.limits.maxComputeWorkgroupsPerDimension);
    const a = randomTensor(rt, [Z, M, K], 21);
    const b = randomTensor(rt, [Z, K, N], 22);
    const c = tiled(rt, () => matmul(a.t, b.t));
    expectClose(await c.toArray(), matmulRef(a.data, b.data, Z, M, N, K), { label: 'tiled batch 66000', relL2: TOL.matmul });
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
    const c = tiled(rt, () => matmul(a, b, { transB: true, bias, activation: 'silu' }));
    expect(c.dtype).toBe('f16');
    const ref = matmulRef(ad, bd, 1, M, N, K, { transB: true, bias: biasd, activation: 'silu' });
    expectClose(await c.toArray(), ref, { label: 'tiled f16 linear+silu', relL2: TOL.f16 });
  });
});
