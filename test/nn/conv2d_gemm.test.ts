// The im2col + matmul conv2d forward (gpu/variants.ts conv2d 'gemm', shaders/conv2d_gemm.wgsl
// then nn/matmul with the bias per output row), forced on this adapter and checked against
// the float64 reference on random non-zero inputs. Cases: the whole batch in one product
// (3x3 and 5x2 kernels, strides 1 and 2, padding 0 and 1, a pointwise 1x1 that multiplies x
// itself, a strided 1x1 that copies), row bands when the im2col matrix passes the binding
// limit (the band's output pasted into y, the residual's band cropped out), the fused
// epilogue and outputScale, f16 storage, both matmul variants, and what 'auto' picks.
import { describe, expect, it, vi } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.js';
import type { VariantChoice } from '../../src/gpu/variants.js';
import { autoConv2dVariant, conv2d } from '../../src/nn/conv2d.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { conv2dRef, convOut, type ConvDims } from '../../src/ref/conv2d.js';
import { expectClose, randomTensor, requireF16, runtime, TOL } from '../helpers.js';
import { forced } from './forced.js';

const WATCH = ['conv2d_forward', 'conv2d_igemm', 'conv2d_im2col', 'conv2d_gemm', 'matmul'];
const FAMILIES = ['conv2d_gemm', 'matmul', 'matmul_tiled'];
const gemm = <R>(rt: Runtime, fn: () => R, choice: Partial<VariantChoice> = {}): R =>
  forced(rt, { conv2d: 'gemm', ...choice }, { watch: WATCH, families: FAMILIES }, fn);

type Case = [string, ConvDims];
const CASES: Case[] = [
  ['3x3 s1 p1 7x5, N2', { N: 2, Cin: 5, H: 7, W: 5, Cout: 7, KH: 3, KW: 3, stride: 1, padding: 1 }],
  ['3x3 s2 p1 7x5 out, N2', { N: 2, Cin: 4, H: 13, W: 9, Cout: 11, KH: 3, KW: 3, stride: 2, padding: 1 }],
  ['3x3 s1 p0 6x6 out, N1', { N: 1, Cin: 3, H: 8, W: 8, Cout: 9, KH: 3, KW: 3, stride: 1, padding: 0 }],
  ['1x1 s1 p0 (x itself), N2', { N: 2, Cin: 6, H: 5, W: 7, Cout: 5, KH: 1, KW: 1, stride: 1, padding: 0 }],
  ['1x1 s2 p0 (copied), N2', { N: 2, Cin: 6, H: 9, W: 7, Cout: 5, KH: 1, KW: 1, stride: 2, padding: 0 }],
  ['5x2 s1 p1 6x8 out, N1', { N: 1, Cin: 4, H: 8, W: 9, Cout: 5, KH: 5, KW: 2, stride: 1, padding: 1 }],
  ['3x3 s1 p1, Cout 300', { N: 1, Cin: 4, H: 6, W: 6, Cout: 300, KH: 3, KW: 3, stride: 1, padding: 1 }],
  // Wo % 4 == 0: the vec4 im2col entry (4 pixels of a row per thread), with quads that
  // reach into the left and right zero padding.
  ['3x3 s1 p1 8x12 out (vec4 im2col), N2', { N: 2, Cin: 3, H: 8, W: 12, Cout: 5, KH: 3, KW: 3, stride: 1, padding: 1 }],
  ['3x3 s2 p1 4x8 out (vec4 im2col), N1', { N: 1, Cin: 3, H: 7, W: 15, Cout: 4, KH: 3, KW: 3, stride: 2, padding: 1 }],
];

function setup(rt: Runtime, d: ConvDims, seed: number, dtype: 'f32' | 'f16' = 'f32') {
  const x = randomTensor(rt, [d.N, d.Cin, d.H, d.W], seed);
  const s = 1 / Math.sqrt(d.Cin * d.KH * d.KW);
  const w = randomTensor(rt, [d.Cout, d.Cin, d.KH, d.KW], seed + 1, -s, s);
  const b = randomTensor(rt, [d.Cout], seed + 2);
  if (dtype === 'f16') {
    const h = (t: { t: Tensor; data: Float32Array }) => ({ t: Tensor.from(rt, t.data, t.t.shape, 'f16'), data: t.data });
    return { x: h(x), w: h(w), b: h(b) };
  }
  return { x, w, b };
}

describe('conv2d variant gemm (forced)', () => {
  it.each(CASES)('forward %s matches float64', async (name, d) => {
    const rt = await runtime();
    const { x, w, b } = setup(rt, d, 10);
    const y = gemm(rt, () => conv2d(x.t, w.t, b.t, { stride: d.stride, padding: d.padding }));
    expect(y.shape).toEqual([d.N, d.Cout, convOut(d).Ho, convOut(d).Wo]);
    expectClose(await y.toArray(), conv2dRef(x.data, w.data, d, { bias: b.data }), { label: `gemm ${name}`, relL2: TOL.matmul });
  });

  it('fused epilogue: no bias; bias + silu + residual; and / outputScale', async () => {
    const rt = await runtime();
    const d = CASES[1][1];
    const { x, w, b } = setup(rt, d, 20);
    const { Ho, Wo } = convOut(d);
    const r = randomTensor(rt, [d.N, d.Cout, Ho, Wo], 24);
    const y0 = gemm(rt, () => conv2d(x.t, w.t, undefined, { stride: 2, padding: 1 }));
    expectClose(await y0.toArray(), conv2dRef(x.data, w.data, d), { label: 'gemm no bias', relL2: TOL.matmul });
    const y1 = gemm(rt, () => conv2d(x.t, w.t, b.t, { stride: 2, padding: 1, activation: 'silu', residual: r.t }));
    const ref1 = conv2dRef(x.data, w.data, d, { bias: b.data, activation: 'silu', residual: r.data });
    expectClose(await y1.toArray(), ref1, { label: 'gemm epilogue', relL2: TOL.matmul });
    const y2 = gemm(rt, () => conv2d(x.t, w.t, b.t, { stride: 2, padding: 1, activation: 'silu', residual: r.t, outputScale: 1.5 }));
    const ref2 = conv2dRef(x.data, w.data, d, { bias: b.data, activation: 'silu', residual: r.data, outputScale: 1.5 });
    expectClose(await y2.toArray(), ref2, { label: 'gemm outputScale', relL2: TOL.matmul });
  });

  it('row bands past the binding limit: each band pasted into y, the residual band cropped', async () => {
    const rt = await runtime();
    // K = 45 taps x 7 output columns x 4 bytes = 1260 bytes per output row: a 3000-byte
    // limit takes 2 rows per band, so 7 output rows make bands of 2, 2, 2 and 1 per sample.
    const d: ConvDims = { N: 3, Cin: 5, H: 7, W: 7, Cout: 6, KH: 3, KW: 3, stride: 1, padding: 1 };
    const { x, w, b } = setup(rt, d, 30);
    const { Ho, Wo } = convOut(d);
    const r = randomTensor(rt, [d.N, d.Cout, Ho, Wo], 34);
    // Each band's im2col matrix goes back to the pool before the next band's is made (at
    // SD 1.5's 512x512 VAE decode, 19 bands held at once were 1.1 GiB).
    const live = new Set<unknown>();
    let most = 0;
    const acquire = rt.pool.acquire.bind(rt.pool);
    const release = rt.pool.release.bind(rt.pool);
    const spyA = vi.spyOn(rt.pool, 'acquire').mockImplementation((bytes, label, fit) => {
      const pb = acquire(bytes, label, fit);
      if (label === 'conv2d.im2col') live.add(pb);
      most = Math.max(most, live.size);
      return pb;
    });
    const spyR = vi.spyOn(rt.pool, 'release').mockImplementation((pb) => {
      live.delete(pb);
      release(pb);
    });
    let y: Tensor;
    try {
      y = gemm(rt, () => conv2d(x.t, w.t, b.t, { padding: 1, activation: 'silu', residual: r.t, maxBindingBytes: 3000 }));
    } finally {
      spyA.mockRestore();
      spyR.mockRestore();
    }
    expect(most, 'im2col matrices alive at once').toBe(1);
    expect(live.size, 'im2col matrices left alive').toBe(0);
    const ref = conv2dRef(x.data, w.data, d, { bias: b.data, activation: 'silu', residual: r.data });
    expectClose(await y.toArray(), ref, { label: 'gemm bands', relL2: TOL.matmul });
    // Stride 2: K = 36 x 5 columns x 4 bytes = 720 bytes per output row; a 2000-byte limit
    // takes bands of 2, 2 and 1 rows (x's 1296 bytes per sample still fit).
    const d2: ConvDims = { N: 2, Cin: 4, H: 9, W: 9, Cout: 5, KH: 3, KW: 3, stride: 2, padding: 1 };
    const s2 = setup(rt, d2, 36);
    const y2 = gemm(rt, () => conv2d(s2.x.t, s2.w.t, s2.b.t, { stride: 2, padding: 1, maxBindingBytes: 2000 }));
    expectClose(await y2.toArray(), conv2dRef(s2.x.data, s2.w.data, d2, { bias: s2.b.data }), { label: 'gemm bands s2', relL2: TOL.matmul });
    // Wo = 8 (the vec4 im2col): K = 27 x 8 columns x 4 bytes = 864 bytes per output row;
    // a 2000-byte limit takes bands of 2 rows, so 6 output rows make 3 bands per sample.
    const d3: ConvDims = { N: 2, Cin: 3, H: 6, W: 8, Cout: 4, KH: 3, KW: 3, stride: 1, padding: 1 };
    const s3 = setup(rt, d3, 38);
    const r3 = randomTensor(rt, [d3.N, d3.Cout, 6, 8], 39);
    const y3 = gemm(rt, () => conv2d(s3.x.t, s3.w.t, s3.b.t, { padding: 1, residual: r3.t, maxBindingBytes: 2000 }));
    expectClose(await y3.toArray(), conv2dRef(s3.x.data, s3.w.data, d3, { bias: s3.b.data, residual: r3.data }), { label: 'gemm bands vec4', relL2: TOL.matmul });
  });

  it('runs on the tiled matmul (hardware adapters\' variant) as well', async () => {
    const rt = await runtime();
    const d = CASES[0][1];
    const { x, w, b } = setup(rt, d, 44);
    const y = gemm(rt, () => conv2d(x.t, w.t, b.t, { padding: 1, activation: 'silu' }), { matmul: 'tiled' });
    expectClose(await y.toArray(), conv2dRef(x.data, w.data, d, { bias: b.data, activation: 'silu' }), { label: 'gemm tiled', relL2: TOL.matmul });
  });

  it('f16 storage matches float64 within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const d = CASES[0][1];
    const { x, w, b } = setup(rt, d, 40, 'f16');
    const y = gemm(rt, () => conv2d(x.t, w.t, b.t, { padding: 1, activation: 'silu' }));
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), conv2dRef(x.data, w.data, d, { bias: b.data, activation: 'silu' }), { label: 'gemm f16', relL2: TOL.f16 });
    const dv = CASES.find(([name]) => name.startsWith('3x3 s1 p1 8x12'))![1];
    const v = setup(rt, dv, 42, 'f16');
    const yv = gemm(rt, () => conv2d(v.x.t, v.w.t, v.b.t, { padding: 1 }));
    expectClose(await yv.toArray(), conv2dRef(v.x.data, v.w.data, dv, { bias: v.b.data }), { label: 'gemm f16 vec4 im2col', relL2: TOL.f16 });
  });

  it("'auto' runs what autoConv2dVariant names: igemm on small maps, gemm elsewhere, direct with an outputScale", async () => {
    const rt = await runtime();
    expect(rt.variants.defaults.conv2d).toBe('auto');
    const shapes: [ConvDims, number][] = [
      [{ N: 2, Cin: 8, H: 4, W: 4, Cout: 16, KH: 3, KW: 3, stride: 1, padding: 1 }, 1],
      [{ N: 1, Cin: 4, H: 32, W: 32, Cout: 8, KH: 3, KW: 3, stride: 1, padding: 1 }, 1],
      [{ N: 1, Cin: 4, H: 32, W: 32, Cout: 8, KH: 3, KW: 3, stride: 1, padding: 1 }, 2],
    ];
    const family = { igemm: ['conv2d_igemm'], gemm: FAMILIES, direct: ['conv2d'] };
    const picked: string[] = [];
    for (const [i, [d, outputScale]] of shapes.entries()) {
      const want = autoConv2dVariant(convOut(d), outputScale);
      picked.push(want);
      const { x, w, b } = setup(rt, d, 60 + i);
      const y = forced(rt, { conv2d: 'auto' }, { watch: WATCH, families: family[want] }, () =>
        conv2d(x.t, w.t, b.t, { stride: d.stride, padding: d.padding, outputScale }));
      expectClose(await y.toArray(), conv2dRef(x.data, w.data, d, { bias: b.data, outputScale }), { label: `auto ${i}`, relL2: TOL.matmul });
    }
    expect(picked).toEqual(['igemm', 'gemm', 'direct']);
  });
});
