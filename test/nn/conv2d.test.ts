import { describe, expect, it } from 'vitest';
import { LimitError } from '../../src/gpu/errors.js';
import { conv2d, conv2dBackward } from '../../src/nn/conv2d.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { conv2dBackwardRef, conv2dRef, convOut, type ConvDims } from '../../src/ref/conv2d.js';
import { expectClose, finiteDiff, randomArray, randomTensor, requireF16, runtime, TOL } from '../helpers.js';

type Case = [string, ConvDims];
// The forward tests here force the 'direct' kernel (shaders/conv2d.wgsl): 'auto' would send
// most of these small maps to the implicit GEMM, which test/nn/conv2d_igemm.test.ts covers.
const direct = <R>(rt: Awaited<ReturnType<typeof runtime>>, fn: () => R): R => rt.variants.with({ conv2d: 'direct' }, fn);
const ragged = { N: 2, Cin: 5, H: 9, W: 11 };
// Shapes are not multiples of the tiles (8 channels x 4 columns per thread); Cout = 11
// spans two channel blocks. W = 12 with a 1x1 kernel reads x in place (no padded copy).
const CASES: Case[] = [
  ['3x3 s1 p1', { ...ragged, Cout: 7, KH: 3, KW: 3, stride: 1, padding: 1 }],
  ['3x3 s2 p1', { ...ragged, Cout: 11, KH: 3, KW: 3, stride: 2, padding: 1 }],
  ['3x3 s1 p0', { ...ragged, Cout: 11, KH: 3, KW: 3, stride: 1, padding: 0 }],
  ['3x3 s2 p0', { ...ragged, Cout: 7, KH: 3, KW: 3, stride: 2, padding: 0 }],
  ['1x1 s1 p0', { ...ragged, Cout: 7, KH: 1, KW: 1, stride: 1, padding: 0 }],
  ['1x1 s2 p0', { ...ragged, Cout: 11, KH: 1, KW: 1, stride: 2, padding: 0 }],
  ['1x1 s1 in place', { N: 2, Cin: 6, H: 5, W: 12, Cout: 9, KH: 1, KW: 1, stride: 1, padding: 0 }],
  ['5x2 s1 p1', { N: 1, Cin: 3, H: 8, W: 7, Cout: 5, KH: 5, KW: 2, stride: 1, padding: 1 }],
];

function setup(rt: Awaited<ReturnType<typeof runtime>>, d: ConvDims, seed: number) {
  const x = randomTensor(rt, [d.N, d.Cin, d.H, d.W], seed);
  const s = 1 / Math.sqrt(d.Cin * d.KH * d.KW);
  const w = randomTensor(rt, [d.Cout, d.Cin, d.KH, d.KW], seed + 1, -s, s);
  const b = randomTensor(rt, [d.Cout], seed + 2);
  const { Ho, Wo } = convOut(d);
  const dy = randomTensor(rt, [d.N, d.Cout, Ho, Wo], seed + 3);
  return { x, w, b, dy, Ho, Wo };
}

describe('conv2d', () => {
  it.each(CASES)('forward %s matches float64', async (name, d) => {
    const rt = await runtime();
    const { x, w, b } = setup(rt, d, 100);
    const y = direct(rt, () => conv2d(x.t, w.t, b.t, { stride: d.stride, padding: d.padding }));
    expect(y.shape).toEqual([d.N, d.Cout, convOut(d).Ho, convOut(d).Wo]);
    expectClose(await y.toArray(), conv2dRef(x.data, w.data, d, { bias: b.data }), { label: `conv2d ${name}`, relL2: TOL.matmul });
  });

  it('fused epilogue: bias + silu + residual, divided by outputScale', async () => {
    const rt = await runtime();
    const d = CASES[1][1];
    const { x, w, b, Ho, Wo } = setup(rt, d, 200);
    const r = randomTensor(rt, [d.N, d.Cout, Ho, Wo], 204);
    const y = direct(rt, () => conv2d(x.t, w.t, b.t, { stride: 2, padding: 1, activation: 'silu', residual: r.t, outputScale: 1.5 }));
    const ref = conv2dRef(x.data, w.data, d, { bias: b.data, activation: 'silu', residual: r.data, outputScale: 1.5 });
    expectClose(await y.toArray(), ref, { label: 'conv2d epilogue', relL2: TOL.matmul });
  });

  it.each(CASES)('backward %s matches the float64 backward', async (name, d) => {
    const rt = await runtime();
    const { x, w, dy } = setup(rt, d, 300);
    const g = conv2dBackward(x.t, w.t, dy.t, { stride: d.stride, padding: d.padding, bias: true });
    const ref = conv2dBackwardRef(x.data, w.data, dy.data, d);
    expectClose(await g.dx.toArray(), ref.dx, { label: `dx ${name}`, relL2: TOL.matmul });
    expectClose(await g.dweight.toArray(), ref.dweight, { label: `dweight ${name}`, relL2: TOL.matmul });
    expectClose(await (g.dbias as Tensor).toArray(), ref.dbias, { label: `dbias ${name}`, relL2: TOL.matmul });
  });

  it.each([CASES[0], CASES[1], CASES[5]])('float64 backward %s agrees with central differences', (name, d) => {
    const x = Float64Array.from(randomArray(d.N * d.Cin * d.H * d.W, 400));
    const w = Float64Array.from(randomArray(d.Cout * d.Cin * d.KH * d.KW, 401));
    const b = Float64Array.from(randomArray(d.Cout, 402));
    const { Ho, Wo } = convOut(d);
    const dy = randomArray(d.N * d.Cout * Ho * Wo, 403);
    const ref = conv2dBackwardRef(x, w, dy, d);
    const loss = (xv: Float64Array, wv: Float64Array, bv: Float64Array) =>
      conv2dRef(xv, wv, d, { bias: bv }).reduce((s, v, i) => s + dy[i] * v, 0);
    const check = (fd: number[], idx: number[], an: Float64Array, what: string) =>
      idx.forEach((i, k) => expect(Math.abs(fd[k] - an[i]), `${name} ${what}[${i}]`).toBeLessThan(1e-6 * Math.max(1, Math.abs(an[i]))));
    // Corners and edges of the image (padding) and interior points.
    const xi = [0, d.W - 1, d.H * d.W - 1, d.H * d.W + d.W + 1, x.length - 1, 37];
    check(finiteDiff((v) => loss(v, w, b), x, xi), xi, ref.dx, 'dx');
    const wi = [0, 4, w.length - 1, Math.floor(w.length / 2)];
    check(finiteDiff((v) => loss(x, v, b), w, wi), wi, ref.dweight, 'dweight');
    const bi = [0, d.Cout - 1];
    check(finiteDiff((v) => loss(x, w, v), b, bi), bi, ref.dbias, 'dbias');
  });

  it('accumulate adds into the given dweight and dbias', async () => {
    const rt = await runtime();
    const d = CASES[0][1];
    const { x, w, dy } = setup(rt, d, 500);
    const w0 = randomTensor(rt, [d.Cout, d.Cin, d.KH, d.KW], 505);
    const b0 = randomTensor(rt, [d.Cout], 506);
    const g = conv2dBackward(x.t, w.t, dy.t, { padding: 1, dweight: w0.t, dbias: b0.t, accumulate: true });
    expect(g.dweight).toBe(w0.t);
    const ref = conv2dBackwardRef(x.data, w.data, dy.data, d);
    expectClose(await g.dweight.toArray(), ref.dweight.map((v, i) => v + w0.data[i]), { label: 'dweight accumulate', relL2: TOL.matmul });
    expectClose(await (g.dbias as Tensor).toArray(), ref.dbias.map((v, i) => v + b0.data[i]), { label: 'dbias accumulate', relL2: TOL.matmul });
  });

  it('splits the batch when a binding would exceed the limit (forced small limit)', async () => {
    const rt = await runtime();
    // Samples of 5*9*11 floats: per-sample offsets are not 256-byte aligned, so each
    // chunk is bound from the aligned-down offset with an element base.
    const d: ConvDims = { N: 5, Cin: 5, H: 9, W: 11, Cout: 7, KH: 3, KW: 3, stride: 1, padding: 1 };
    const { x, w, b, dy, Ho, Wo } = setup(rt, d, 600);
    const r = randomTensor(rt, [d.N, d.Cout, Ho, Wo], 604);
    const limit = 6000; // about two padded samples (5*11*16*4 = 3520 bytes each)
    const y = direct(rt, () => conv2d(x.t, w.t, b.t, { padding: 1, residual: r.t, activation: 'silu', maxBindingBytes: limit }));
    const yRef = conv2dRef(x.data, w.data, d, { bias: b.data, residual: r.data, activation: 'silu' });
    expectClose(await y.toArray(), yRef, { label: 'conv2d split', relL2: TOL.matmul });
    const g = conv2dBackward(x.t, w.t, dy.t, { padding: 1, bias: true, maxBindingBytes: limit });
    const ref = conv2dBackwardRef(x.data, w.data, dy.data, d);
    expectClose(await g.dx.toArray(), ref.dx, { label: 'dx split', relL2: TOL.matmul });
    expectClose(await g.dweight.toArray(), ref.dweight, { label: 'dweight split', relL2: TOL.matmul });
    expectClose(await (g.dbias as Tensor).toArray(), ref.dbias, { label: 'dbias split', relL2: TOL.matmul });
    // The in-place (no padded copy) path with vec4 slices of x.
    const d1: ConvDims = { N: 3, Cin: 3, H: 3, W: 20, Cout: 4, KH: 1, KW: 1, stride: 1, padding: 0 };
    const s1 = setup(rt, d1, 610);
    const y1 = direct(rt, () => conv2d(s1.x.t, s1.w.t, undefined, { maxBindingBytes: 1500 }));
    expectClose(await y1.toArray(), conv2dRef(s1.x.data, s1.w.data, d1), { label: 'conv2d 1x1 split', relL2: TOL.matmul });
  });

  it('throws a LimitError naming the tensor when one sample does not fit', async () => {
    const rt = await runtime();
    const d = CASES[0][1];
    const { x, w, dy } = setup(rt, d, 700);
    expect(() => conv2d(x.t, w.t, undefined, { padding: 1, maxBindingBytes: 2000 })).toThrow(LimitError);
    expect(() => direct(rt, () => conv2d(x.t, w.t, undefined, { padding: 1, maxBindingBytes: 2000 }))).toThrow(/padded x/);
    expect(() => conv2dBackward(x.t, w.t, dy.t, { padding: 1, maxBindingBytes: 2000 })).toThrow(/dilated dy/);
  });

  it('f16 storage matches float64 within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const d = CASES[1][1];
    const { x, w, b } = setup(rt, d, 800);
    const f16 = (t: Tensor, data: Float32Array) => Tensor.from(rt, data, t.shape, 'f16');
    const y = direct(rt, () => conv2d(f16(x.t, x.data), f16(w.t, w.data), f16(b.t, b.data), { stride: 2, padding: 1 }));
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), conv2dRef(x.data, w.data, d, { bias: b.data }), { label: 'conv2d f16', relL2: TOL.f16 });
  });
});
