import { describe, expect, it } from 'vitest';
import { pad2d, pad2dBackward, pasteInto2d, window2d, type Pads } from '../../src/nn/pad.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { pad2dRef, pasteRef, windowRef } from '../../src/ref/pad.js';
import { expectClose, finiteDiff, randomTensor, requireF16, runtime, TOL } from '../helpers.js';

describe('pad', () => {
  it.each<[number[], Pads]>([
    [[2, 3, 5, 7], [0, 1, 0, 1]],
    [[2, 5, 9, 11], [2, -1, -2, 3]],
    [[3, 4, 6], [1, 1, 1, 1]],
  ])('pad2d %j by %j matches float64', async (shape, pads) => {
    const rt = await runtime();
    const { t, data } = randomTensor(rt, shape, 31);
    const y = pad2d(t, pads);
    const [h, w] = shape.slice(-2);
    const planes = t.size / (h * w);
    expect(y.shape).toEqual([...shape.slice(0, -2), h + pads[2] + pads[3], w + pads[0] + pads[1]]);
    expectClose(await y.toArray(), pad2dRef(data, planes, h, w, pads), { label: `pad2d ${shape} ${pads}`, relL2: TOL.elementwise });
  });

  it('window2d of some samples, in forced runs of planes', async () => {
    const rt = await runtime();
    const shape = [3, 5, 9, 11];
    const { t, data } = randomTensor(rt, shape, 32);
    // 396-byte planes under a 1 KiB limit: one plane per run, each bound at an aligned offset.
    const y = window2d(t, -1, 2, 7, 12, { batch: [1, 2], maxBindingBytes: 1024 });
    expect(y.shape).toEqual([2, 5, 7, 12]);
    const ref = windowRef(data.subarray(5 * 99), 10, 9, 11, -1, 2, 7, 12);
    expectClose(await y.toArray(), ref, { label: 'window2d runs', relL2: TOL.elementwise });
  });

  it('pasteInto2d writes a box into given samples, in forced runs of planes', async () => {
    const rt = await runtime();
    const dst = randomTensor(rt, [3, 4, 10, 13], 33);
    const src = randomTensor(rt, [2, 4, 3, 8], 34);
    pasteInto2d(dst.t, src.t, 6, 4, { batchStart: 1, maxBindingBytes: 1200 });
    const ref = Float64Array.from(dst.data);
    ref.set(pasteRef(dst.data.subarray(4 * 130), 10, 13, src.data, 8, 3, 8, 6, 4), 4 * 130);
    expectClose(await dst.t.toArray(), ref, { label: 'pasteInto2d', relL2: TOL.elementwise });
    expect(() => pasteInto2d(dst.t, src.t, 8, 0)).toThrow(/does not fit/);
  });

  it('pad2dBackward matches the float64 adjoint and finite differences', async () => {
    const rt = await runtime();
    const pads: Pads = [1, -2, 0, 2];
    const shape = [2, 3, 6, 7];
    const { data: xd } = randomTensor(rt, shape, 35);
    const outShape = [2, 3, 8, 6];
    const { t: dy, data: dyd } = randomTensor(rt, outShape, 36);
    const dx = await pad2dBackward(dy, pads).toArray();
    const ref = windowRef(dyd, 6, 8, 6, pads[2], pads[0], 6, 7);
    expectClose(dx, ref, { label: 'pad2d backward', relL2: TOL.elementwise });
    const loss = (x: Float64Array) => pad2dRef(x, 6, 6, 7, pads).reduce((s, v, i) => s + v * dyd[i], 0);
    const idx = [0, 5, 6, 40, 251];
    const fd = finiteDiff(loss, Float64Array.from(xd), idx);
    idx.forEach((i, k) => expect(Math.abs(fd[k] - ref[i])).toBeLessThan(1e-6));
  });

  it('crosses 65535 workgroups along one axis', async () => {
    const rt = await runtime();
    const n = 4097;
    // A constant input (filled on the GPU, no 67 MB upload); the NaN-poisoned output
    // shows that every element of every folded workgroup row is written.
    const x = Tensor.empty(rt, [1, 1, n, n]);
    x.fillBits(0x3fc00000);
    const y = await pad2d(x, [0, 1, 0, 1]).toArray();
    expect(Math.ceil(y.length / 256)).toBeGreaterThan(65535);
    let bad = 0;
    for (let r = 0; r <= n; r++) {
      for (let c = 0; c <= n; c++) if (y[r * (n + 1) + c] !== (r < n && c < n ? 1.5 : 0)) bad++;
    }
    expect(bad).toBe(0);
  });

  it('f16 pads when the adapter has shader-f16', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const { data } = randomTensor(rt, [2, 3, 5, 5], 37);
    const y = pad2d(Tensor.from(rt, data, [2, 3, 5, 5], 'f16'), [0, 1, 0, 1]);
    expectClose(await y.toArray(), pad2dRef(Float32Array.from(data, (v) => Math.fround(v)), 6, 5, 5, [0, 1, 0, 1]), { label: 'pad2d f16', relL2: TOL.f16 });
  });
});
