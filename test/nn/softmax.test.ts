import { describe, expect, it } from 'vitest';
import { softmax, softmaxBackward } from '../../src/nn/softmax.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { softmaxBackwardRef, softmaxRef } from '../../src/ref/softmax.js';
import { expectClose, finiteDiff, randomTensor, requireF16, runtime, TOL } from '../helpers.js';

describe('softmax', () => {
  // Row widths: CLIP's 77 tokens, 1024 (a 32x32 latent's attention; vec4 path), 4097
  // (past 4096, not a multiple of any workgroup size), 4100 (vec4, last vec4 ragged
  // against the workgroup) and a ragged 3.
  it.each([
    [5, 77, 1],
    [3, 1024, 0.125],
    [2, 4097, 1],
    [2, 4100, 0.7],
    [9, 3, 2.5],
  ])('forward rows=%i n=%i scale=%f matches float64', async (rows, n, scale) => {
    const rt = await runtime();
    const { t, data } = randomTensor(rt, [rows, n], n, -6, 6);
    const y = softmax(t, scale);
    expect(y.shape).toEqual([rows, n]);
    expectClose(await y.toArray(), softmaxRef(data, rows, n, scale), { label: `softmax ${rows}x${n}`, relL2: TOL.reduction });
  });

  it('is stable for large logits (max-subtracted)', async () => {
    const rt = await runtime();
    const { t, data } = randomTensor(rt, [4, 300], 7, 80, 120);
    const y = await softmax(t).toArray();
    expectClose(y, softmaxRef(data, 4, 300), { label: 'softmax large', relL2: TOL.reduction });
  });

  it.each([
    [4, 77, 0.5],
    [2, 1030, 1],
  ])('backward rows=%i n=%i matches float64 and finite differences', async (rows, n, scale) => {
    const rt = await runtime();
    const x = randomTensor(rt, [rows, n], 100 + n, -3, 3);
    const dy = randomTensor(rt, [rows, n], 200 + n);
    const y = softmax(x.t, scale);
    const dx = await softmaxBackward(y, dy.t, scale).toArray();
    const y64 = softmaxRef(x.data, rows, n, scale);
    const ref = softmaxBackwardRef(y64, dy.data, rows, n, scale);
    expectClose(dx, ref, { label: `softmax backward ${rows}x${n}`, relL2: TOL.reduction });
    // The analytic reference agrees with central differences of loss = <dy, softmax(x)>.
    const loss = (v: Float64Array) => softmaxRef(v, rows, n, scale).reduce((s, yv, i) => s + dy.data[i] * yv, 0);
    const idx = [0, 1, n - 1, n + 5, rows * n - 1];
    const fd = finiteDiff(loss, Float64Array.from(x.data), idx);
    const refScale = Math.max(...Array.from(ref, Math.abs));
    idx.forEach((i, k) => expect(Math.abs(fd[k] - ref[i])).toBeLessThan(1e-7 * Math.max(1, refScale) + 1e-8));
  });

  it('folds more than 65535 rows into a 2-D grid', async () => {
    const rt = await runtime();
    const rows = 70001;
    const { t, data } = randomTensor(rt, [rows, 5], 9, -4, 4);
    const y = softmax(t);
    expectClose(await y.toArray(), softmaxRef(data, rows, 5), { label: 'softmax 70001 rows', relL2: TOL.reduction });
    const dy = randomTensor(rt, [rows, 5], 10);
    const dx = await softmaxBackward(y, dy.t).toArray();
    const ref = softmaxBackwardRef(softmaxRef(data, rows, 5), dy.data, rows, 5);
    expectClose(dx, ref, { label: 'softmax backward 70001 rows', relL2: TOL.reduction });
    // Width 4 takes the vec4 path.
    const v = randomTensor(rt, [rows, 4], 12, -4, 4);
    expectClose(await softmax(v.t).toArray(), softmaxRef(v.data, rows, 4), { label: 'softmax vec4 70001 rows', relL2: TOL.reduction });
  });

  it('f16 storage matches float64 within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const { data } = randomTensor(rt, [3, 333], 11, -4, 4);
    const y = softmax(Tensor.from(rt, data, [3, 333], 'f16'));
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), softmaxRef(data, 3, 333), { label: 'softmax f16', relL2: TOL.f16 });
  });
});
