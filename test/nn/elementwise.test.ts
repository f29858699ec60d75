import { describe, expect, it } from 'vitest';
import { ACT, add, binary, unary, unaryBackward, type Activation } from '../../src/nn/elementwise.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { ACT_REF, binaryRef, unaryRef } from '../../src/ref/elementwise.js';
import { expectClose, finiteDiff, randomTensor, requireF16, runtime, TOL } from '../helpers.js';

const acts = Object.keys(ACT) as Activation[];

describe('elementwise', () => {
  it.each(acts)('unary %s forward matches float64', async (act) => {
    const rt = await runtime();
    const { t, data } = randomTensor(rt, [3, 257], 11, -4, 4);
    const y = unary(t, act, 1.25, 0.1);
    expectClose(await y.toArray(), unaryRef(data, act, 1.25, 0.1), { label: `unary ${act}`, relL2: TOL.elementwise });
  });

  it.each(acts)('unary %s backward matches float64 and finite differences', async (act) => {
    const rt = await runtime();
    const { t, data } = randomTensor(rt, [517], 12, -3, 3);
    const { t: dy, data: dyd } = randomTensor(rt, [517], 13);
    const dx = await unaryBackward(t, dy, act, 0.9, -0.2).toArray();
    const df = ACT_REF[act].df;
    const ref = Float64Array.from(data, (x, i) => dyd[i] * df(0.9 * x - 0.2) * 0.9);
    expectClose(dx, ref, { label: `unary ${act} backward`, relL2: 1e-5 });
    // The analytic reference agrees with central differences of the forward reference.
    const f = ACT_REF[act].f;
    const x64 = Float64Array.from(data);
    const loss = (x: Float64Array) => x.reduce((s, v, i) => s + dyd[i] * f(0.9 * v - 0.2), 0);
    const idx = [0, 100, 516].filter((i) => act !== 'relu' || Math.abs(0.9 * data[i] - 0.2) > 1e-3);
    const fd = finiteDiff(loss, x64, idx);
    idx.forEach((i, k) => expect(Math.abs(fd[k] - ref[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(ref[i]))));
  });

  const cases: [number[], number[]][] = [
    [[2, 3, 5, 7], [2, 3, 5, 7]],
    [[2, 320, 9, 9], [1, 320, 1, 1]],
    [[4, 1, 6], [5, 1]],
    [[7], [3, 1, 7]],
    [[2, 3, 4, 5, 6], [1, 3, 1, 5, 1]],
  ];
  const ops = { add: (x: number, y: number) => x + y, sub: (x: number, y: number) => x - y, mul: (x: number, y: number) => x * y, div: (x: number, y: number) => x / y };
  it.each(cases)('binary ops broadcast %j with %j', async (as, bs) => {
    const rt = await runtime();
    const a = randomTensor(rt, as, 21);
    const b = randomTensor(rt, bs, 22, 0.5, 2);
    for (const [name, f] of Object.entries(ops)) {
      const c = binary(a.t, b.t, name as keyof typeof ops);
      const ref = binaryRef(a.data, as, b.data, bs, f);
      expect(c.shape).toEqual(ref.shape);
      expectClose(await c.toArray(), ref.out, { label: `${name} ${as}|${bs}`, relL2: TOL.elementwise });
    }
  });

  it('fused bias + silu equals silu(a + b)', async () => {
    const rt = await runtime();
    const a = randomTensor(rt, [2, 64, 33], 31, -3, 3);
    const b = randomTensor(rt, [64, 1], 32);
    const c = add(a.t, b.t, 'silu');
    const ref = binaryRef(a.data, [2, 64, 33], b.data, [64, 1], (x, y) => ACT_REF.silu.f(x + y));
    expectClose(await c.toArray(), ref.out, { label: 'bias+silu', relL2: TOL.elementwise });
  });

  it('folds grids past 65535 workgroups along one axis (fill: one word per thread)', async () => {
    const rt = await runtime();
    const n = 65536 * 256 + 1000; // 65540 workgroups of 256 threads
    const t = Tensor.empty(rt, [n], 'f32', 'big'); // NaN-poisoned by the test runtime
    expect(rt.grid(Math.ceil(n / 256))[1]).toBe(2);
    const y = await t.zero().toArray();
    let bad = 0;
    for (let i = 0; i < n; i++) if (y[i] !== 0) bad++;
    expect(bad).toBe(0);
    t.dispose();
  });

  it('relu over 16.8M elements (4 per thread, ragged tail) matches float64', async () => {
    const rt = await runtime();
    const n = 65536 * 256 + 1001;
    const { t, data } = randomTensor(rt, [n], 41);
    const y = await unary(t, 'relu').toArray();
    expectClose(y, unaryRef(data, 'relu'), { label: 'relu 16.8M', relL2: TOL.elementwise });
    t.dispose();
  });

  it('f16 storage matches float64 within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const { data } = randomTensor(rt, [999], 51, -2, 2);
    const t = Tensor.from(rt, data, [999], 'f16');
    const y = unary(t, 'gelu');
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), unaryRef(data, 'gelu'), { label: 'gelu f16', relL2: TOL.f16 });
  });
});
