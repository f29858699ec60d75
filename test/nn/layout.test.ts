import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/gpu/errors.js';
import { concat, copyInto, permute, slice } from '../../src/nn/layout.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { concatRef, permuteRef, sliceRef } from '../../src/ref/layout.js';
import { expectClose, randomArray, randomTensor, requireF16, runtime } from '../helpers.js';

// Data movement is exact: every comparison asks for rel L2 0 except f16 widening checks.
const EXACT = 0;

describe('layout', () => {
  // Axis 3 copies single elements (scalar path); the [.., 8] base takes the vec4 path on
  // axes 0..2 (inner run a multiple of 4).
  it.each([0, 1, 2, 3])('concat of 3 ragged inputs along axis %i', async (axis) => {
    const rt = await runtime();
    for (const base of [[2, 3, 5, 7], [2, 3, 5, 8]]) {
      const shapes = [1, 2, 3].map((k) => base.map((d, i) => (i === axis ? d + k : d)));
      const xs = shapes.map((s, i) => randomTensor(rt, s, 100 + i));
      const y = concat(xs.map((x) => x.t), axis);
      const ref = concatRef(xs.map((x) => x.data), shapes, axis);
      expect(y.shape).toEqual(ref.shape);
      expectClose(await y.toArray(), ref.out, { label: `concat axis ${axis} base ${base}`, relL2: EXACT });
    }
  });

  it('concat keeps the bits of i32 tensors', async () => {
    const rt = await runtime();
    // Small ints are f32 denormals and 0x7fc00001 / -1 are NaN patterns: all must survive.
    const a = Int32Array.from([1, 2, 3, 0x7fc00001, -1, 0x00000007]);
    const b = Int32Array.from([-5, 0x7f800001, 12345678]);
    const y = concat([Tensor.from(rt, a, [2, 3], 'i32'), Tensor.from(rt, b, [1, 3], 'i32')], 0);
    expect(Array.from(await y.toIntArray())).toEqual([...a, ...b]);
  });

  it('concat keeps f16 values', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const ha = Tensor.from(rt, randomArray(3 * 5, 7), [3, 5], 'f16');
    const hb = Tensor.from(rt, randomArray(3 * 2, 8), [3, 2], 'f16');
    const hy = concat([ha, hb], 1);
    expect(hy.dtype).toBe('f16');
    const ref = concatRef([await ha.toArray(), await hb.toArray()], [[3, 5], [3, 2]], 1);
    expectClose(await hy.toArray(), ref.out, { label: 'concat f16', relL2: EXACT });
  });

  it.each([
    [[4, 6, 5, 3], 0, 1, 3],
    [[4, 6, 5, 3], 1, 2, 6],
    [[4, 6, 5, 3], 2, 0, 4],
    [[4, 6, 5, 3], 3, 1, 2],
    [[2, 9, 8], 1, 3, 7],
    [[2, 9, 8], -1, -6, -2],
  ])('slice %j axis %i [%i, %i)', async (shape, axis, start, end) => {
    const rt = await runtime();
    const x = randomTensor(rt, shape, 200);
    const y = slice(x.t, axis, start, end);
    const a = axis < 0 ? axis + shape.length : axis;
    const d = shape[a];
    const [s, e] = [start < 0 ? start + d : start, end < 0 ? end + d : end];
    expect(y.shape).toEqual(shape.map((v, i) => (i === a ? e - s : v)));
    expectClose(await y.toArray(), sliceRef(x.data, shape, a, s, e), { label: `slice ${shape}`, relL2: EXACT });
  });

  it('copyInto writes only its window (the backward of slice)', async (ctx) => {
    const rt = await runtime();
    const dst = randomTensor(rt, [3, 10, 4], 300);
    const src = randomTensor(rt, [3, 4, 4], 301);
    copyInto(dst.t, src.t, 1, 5);
    const ref = Float64Array.from(dst.data);
    for (let o = 0; o < 3; o++) for (let m = 0; m < 4; m++) for (let i = 0; i < 4; i++) ref[(o * 10 + 5 + m) * 4 + i] = src.data[(o * 4 + m) * 4 + i];
    expectClose(await dst.t.toArray(), ref, { label: 'copyInto', relL2: EXACT });
    expect(() => copyInto(dst.t, src.t, 1, 7)).toThrow(ShapeError);
  });

  it.each([
    [[2, 3, 5, 7], [0, 2, 1, 3]],
    [[2, 3, 5, 8], [0, 2, 1, 3]],
    [[2, 3, 5, 7], [0, 2, 3, 1]],
    [[2, 12, 5, 6], [0, 2, 3, 1]],
    // Batched transposes in 4 x 4 register blocks: NCHW -> NHWC (P = 36, Q = 20),
    // NHWC -> NCHW, 2-D; a ragged 2-D transpose takes the gather.
    [[2, 20, 4, 9], [0, 2, 3, 1]],
    [[1, 6, 2, 40], [0, 3, 1, 2]],
    [[12, 8], [1, 0]],
    [[33, 47], [1, 0]],
    [[3, 4, 5, 2], [3, 1, 0, 2]],
    [[2, 3, 1, 4, 5, 3], [5, 0, 3, 2, 1, 4]],
    [[37, 5], [1, 0]],
    [[11], [0]],
  ])('permute %j by %j', async (shape, perm) => {
    const rt = await runtime();
    const x = randomTensor(rt, shape, 400);
    const y = permute(x.t, perm);
    expect(y.shape).toEqual(perm.map((p) => shape[p]));
    expectClose(await y.toArray(), permuteRef(x.data, shape, perm), { label: `permute ${shape} ${perm}`, relL2: EXACT });
  });

  it.for([
    [[2, 8, 3, 4], [0, 2, 3, 1]],
    [[2, 3, 5, 8], [0, 2, 1, 3]],
    [[3, 5, 7], [2, 0, 1]],
  ])('f16 permute %j by %j', async ([shape, perm], ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const x = Tensor.from(rt, randomArray(shape.reduce((a, b) => a * b, 1), 410), shape, 'f16');
    const y = permute(x, perm);
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), permuteRef(await x.toArray(), shape, perm), { label: `f16 permute ${shape}`, relL2: EXACT });
  });

  it('permute crosses the 65535-workgroup limit along one axis', async () => {
    const rt = await runtime();
    // 2 x 8,389,121 transposed: 16,778,242 threads = 65,541 workgroups of 256 (scalar path).
    const cols = 65541 * 128 - 7;
    const x = randomTensor(rt, [2, cols], 500);
    const y = await permute(x.t, [1, 0]).toArray();
    const ref = new Float32Array(2 * cols);
    for (let j = 0; j < cols; j++) {
      ref[2 * j] = x.data[j];
      ref[2 * j + 1] = x.data[cols + j];
    }
    expectClose(y, ref, { label: 'transpose 2 x 8.4M', relL2: EXACT });
    x.t.dispose();
  });

  it('slice and copyInto of a tensor past the binding limit run over the outer dims', async () => {
    const rt = await runtime();
    // [3, 11, 1024, 1000] f32 = 135 MB > 128 MiB; one outer index (11 x 1024 x 1000) is
    // 45 MB, so the copies run over outer indices [0, 2) and [2, 3).
    const [outer, mid, inner] = [3, 11, 1024 * 1000];
    const x = Tensor.empty(rt, [outer, mid, 1024, 1000], 'f32', 'big');
    expect(x.bytes).toBeGreaterThan(rt.limits.maxStorageBufferBindingSize);
    // value = (i mod 4093) + 4096 * channel: distinct per channel, exact in f32.
    const value = (o: number, m: number, i: number) => (i % 4093) + 4096 * (o * mid + m);
    const base = Float32Array.from({ length: inner }, (_, i) => i % 4093);
    const row = new Float32Array(inner);
    for (let c = 0; c < outer * mid; c++) {
      for (let i = 0; i < inner; i++) row[i] = base[i] + 4096 * c;
      x.write(row, c * inner);
    }
    const firstBad = (got: Float32Array, channels: number, expected: (o: number, m: number, i: number) => number) => {
      for (let k = 0; k < got.length; k++) {
        const i = k % inner;
        const m = Math.floor(k / inner) % channels;
        if (got[k] !== expected(Math.floor(k / (channels * inner)), m, i)) return k;
      }
      return -1;
    };
    const y = slice(x, 1, 2, 4);
    expect(firstBad(await y.toArray(), 2, (o, m, i) => value(o, m + 2, i)), 'first wrong element of the slice').toBe(-1);
    // Writing channels 2..3 back at 7..8 touches exactly that window (6 and 9 unchanged).
    copyInto(x, y, 1, 7);
    const back = await slice(x, 1, 6, 10).toArray();
    const expected = (o: number, m: number, i: number) => value(o, m === 1 || m === 2 ? m + 1 : m + 6, i);
    expect(firstBad(back, 4, expected), 'first wrong element after copyInto').toBe(-1);
    x.dispose();
  });

  it('rejects bad shapes with ShapeError', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [2, 3], 600).t;
    expect(() => concat([x, randomTensor(rt, [3, 3], 601).t], 1)).toThrow(ShapeError);
    expect(() => slice(x, 1, 2, 4)).toThrow(ShapeError);
    expect(() => permute(x, [0, 0])).toThrow(ShapeError);
    expect(() => permute(randomTensor(rt, [1, 1, 1, 1, 1, 1, 2], 602).t, [0, 1, 2, 3, 4, 5, 6])).toThrow(ShapeError);
  });
});
