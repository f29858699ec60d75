// The implicit-GEMM conv2d forward (gpu/variants.ts conv2d 'igemm', shaders/conv2d_igemm.wgsl),
// forced on this adapter and checked against the float64 reference on random non-zero
// inputs. Shapes are ragged against its tiles (8 pixels per workgroup, 4 channels per lane,
// 8..64 lanes, groups of 4 input channels): Cin * KH * KW not a multiple of 4 (scalar
// weight loads) and a multiple of 4 (vec4 loads), Cin % 4 != 0 (tail loop), Cout past one
// channel block, outputs 1x1, 4x4 and 7x5, batch 1 and 2. Each case asserts that the
// igemm kernel is the one that ran.
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.js';
import { conv2d } from '../../src/nn/conv2d.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { conv2dRef, convOut, type ConvDims } from '../../src/ref/conv2d.js';
import { expectClose, randomTensor, requireF16, runtime, TOL } from '../helpers.js';
import { forced } from './forced.js';

const WATCH = ['conv2d_forward', 'conv2d_igemm_forward', 'conv2d_igemm_nhwc'];
const igemm = <R>(rt: Runtime, fn: () => R): R =>
  forced(rt, { conv2d: 'igemm' }, { watch: WATCH, families: ['conv2d_igemm'] }, fn);

type Case = [string, ConvDims];
const CASES: Case[] = [
  // K = 45: scalar weights; Cin 5 = one group of 4 + a tail channel.
  ['3x3 s1 p1 4x4 out, N2, Cin 5', { N: 2, Cin: 5, H: 4, W: 4, Cout: 7, KH: 3, KW: 3, stride: 1, padding: 1 }],
  ['3x3 s2 p1 7x5 out, N2, Cin 5', { N: 2, Cin: 5, H: 13, W: 9, Cout: 11, KH: 3, KW: 3, stride: 2, padding: 1 }],
  ['3x3 s1 p0 1x1 out, N1, Cin 6', { N: 1, Cin: 6, H: 3, W: 3, Cout: 9, KH: 3, KW: 3, stride: 1, padding: 0 }],
  ['3x3 s2 p0 7x5 out, N1, Cin 3', { N: 1, Cin: 3, H: 15, W: 11, Cout: 5, KH: 3, KW: 3, stride: 2, padding: 0 }],
  // K % 4 == 0: vec4 weight loads (Cin 8: two groups; Cin 12: three).
  ['3x3 s1 p1 7x5 out, N2, Cin 8', { N: 2, Cin: 8, H: 7, W: 5, Cout: 13, KH: 3, KW: 3, stride: 1, padding: 1 }],
  ['3x3 s2 p1 4x4 out, N1, Cin 12', { N: 1, Cin: 12, H: 8, W: 7, Cout: 6, KH: 3, KW: 3, stride: 2, padding: 1 }],
  ['1x1 s1 p0 4x4 out, N2, Cin 8', { N: 2, Cin: 8, H: 4, W: 4, Cout: 7, KH: 1, KW: 1, stride: 1, padding: 0 }],
  ['1x1 s2 p0 7x5 out, N2, Cin 6', { N: 2, Cin: 6, H: 13, W: 9, Cout: 11, KH: 1, KW: 1, stride: 2, padding: 0 }],
  ['1x1 s1 p0 1x1 out, N1, Cin 3', { N: 1, Cin: 3, H: 1, W: 1, Cout: 5, KH: 1, KW: 1, stride: 1, padding: 0 }],
  // Cout 300 = 75 lanes of 4 channels: two channel blocks of 40 lanes, the last ragged.
  ['3x3 s1 p1 4x4 out, N2, Cout 300', { N: 2, Cin: 4, H: 4, W: 4, Cout: 300, KH: 3, KW: 3, stride: 1, padding: 1 }],
  // A non-square kernel with padding (taps not a multiple of 4).
  ['5x2 s1 p1 6x8 out, N1, Cin 4', { N: 1, Cin: 4, H: 8, W: 9, Cout: 5, KH: 5, KW: 2, stride: 1, padding: 1 }],
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

describe('conv2d variant igemm (forced)', () => {
  // Channels-last (conv2d_igemm_nhwc) needs Cin % 4 == 0; of those cases, three run in both
  // layouts and two channels-last only (each layout and flag set is a shader compile of a
  // few seconds on lavapipe).
  const BOTH = new Set([4, 9, 10]);
  const LAYOUT_CASES = CASES.flatMap(([name, d], i): [string, ConvDims, 'nchw' | 'nhwc'][] => {
    if (d.Cin % 4 !== 0) return [[`${name} nchw`, d, 'nchw']];
    if (BOTH.has(i)) return [[`${name} nchw`, d, 'nchw'], [`${name} nhwc`, d, 'nhwc']];
    return [[`${name} nhwc`, d, 'nhwc']];
  });
  it.each(LAYOUT_CASES)('forward %s matches float64', async (name, d, layout) => {
    const rt = await runtime();
    const { x, w, b } = setup(rt, d, 10);
    const y = igemm(rt, () => conv2d(x.t, w.t, b.t, { stride: d.stride, padding: d.padding, igemmLayout: layout }));
    expect(y.shape).toEqual([d.N, d.Cout, convOut(d).Ho, convOut(d).Wo]);
    expectClose(await y.toArray(), conv2dRef(x.data, w.data, d, { bias: b.data }), { label: `igemm ${name}`, relL2: TOL.matmul });
  });

  it('fused epilogue without bias, and with bias + silu + residual / outputScale', async () => {
    const rt = await runtime();
    const d = CASES[1][1];
    const { x, w, b } = setup(rt, d, 20);
    const { Ho, Wo } = convOut(d);
    const r = randomTensor(rt, [d.N, d.Cout, Ho, Wo], 24);
    const y0 = igemm(rt, () => conv2d(x.t, w.t, undefined, { stride: 2, padding: 1 }));
    expectClose(await y0.toArray(), conv2dRef(x.data, w.data, d), { label: 'igemm no bias', relL2: TOL.matmul });
    const y = igemm(rt, () => conv2d(x.t, w.t, b.t, { stride: 2, padding: 1, activation: 'silu', residual: r.t, outputScale: 1.5 }));
    const ref = conv2dRef(x.data, w.data, d, { bias: b.data, activation: 'silu', residual: r.data, outputScale: 1.5 });
    expectClose(await y.toArray(), ref, { label: 'igemm epilogue', relL2: TOL.matmul });
  });

  it('splits the batch when a binding would pass the limit (element offsets into the slices)', async () => {
    const rt = await runtime();
    const d: ConvDims = { N: 3, Cin: 4, H: 5, W: 6, Cout: 9, KH: 3, KW: 3, stride: 1, padding: 1 };
    const { x, w, b } = setup(rt, d, 30);
    const { Ho, Wo } = convOut(d);
    const r = randomTensor(rt, [d.N, d.Cout, Ho, Wo], 34);
    // One sample of y is 1080 bytes: a 1500-byte limit (less the 256-byte offset
    // alignment) takes one sample per dispatch. Both layouts slice their inputs.
    for (const igemmLayout of ['nchw', 'nhwc'] as const) {
      const y = igemm(rt, () => conv2d(x.t, w.t, b.t, { padding: 1, residual: r.t, maxBindingBytes: 1500, igemmLayout }));
      expectClose(await y.toArray(), conv2dRef(x.data, w.data, d, { bias: b.data, residual: r.data }), { label: `igemm split ${igemmLayout}`, relL2: TOL.matmul });
    }
  });

  const F16_CASES: [string, ConvDims, 'nchw' | 'nhwc'][] = [
    ['vec4 weights', { N: 2, Cin: 8, H: 4, W: 4, Cout: 11, KH: 3, KW: 3, stride: 1, padding: 1 }, 'nchw'],
    ['channels-last', { N: 2, Cin: 8, H: 4, W: 4, Cout: 11, KH: 3, KW: 3, stride: 1, padding: 1 }, 'nhwc'],
  ];
  for (const [name, d, layout] of F16_CASES) {
    it(`f16 storage (${name}) matches float64 within the f16 tolerance`, async (ctx) => {
      const rt = await runtime();
      requireF16(rt, ctx);
      const { x, w, b } = setup(rt, d, 40, 'f16');
      const y = igemm(rt, () => conv2d(x.t, w.t, b.t, { stride: d.stride, padding: d.padding, activation: 'silu', igemmLayout: layout }));
      expect(y.dtype).toBe('f16');
      const ref = conv2dRef(x.data, w.data, d, { bias: b.data, activation: 'silu' });
      expectClose(await y.toArray(), ref, { label: `igemm f16 ${name}`, relL2: TOL.f16 });
    });
  }

  it('more than 65535 workgroups: the linear workgroup index folds into x and y', async () => {
    const rt = await runtime();
    // 725 x 725 = 525625 pixels in blocks of 8: 65704 workgroups of one channel block.
    const d: ConvDims = { N: 1, Cin: 1, H: 725, W: 725, Cout: 1, KH: 1, KW: 1, stride: 1, padding: 0 };
    expect(Math.ceil((d.H * d.W) / 8)).toBeGreaterThan(rt.limits.maxComputeWorkgroupsPerDimension);
    const { x, w, b } = setup(rt, d, 50);
    const y = igemm(rt, () => conv2d(x.t, w.t, b.t));
    expectClose(await y.toArray(), conv2dRef(x.data, w.data, d, { bias: b.data }), { label: 'igemm 65704 workgroups', relL2: TOL.matmul });
  });
  // What 'auto' picks (igemm on small maps, gemm elsewhere) is checked in conv2d_gemm.test.ts.
});
