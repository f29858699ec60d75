import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { maxPool2d } from '../../src/nn/max_pool.js';
import { maxPoolRef } from '../../src/ref/max_pool.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { expectClose, randomArray, randomTensor, requireF16, runtime } from '../helpers.js';

// Max pooling selects an input element: every output must equal the reference exactly.

describe('max_pool', () => {
  // (shape, kernel, stride, padding): ResNet's stem pool on ragged sizes, FPN's
  // LastLevelMaxPool (kernel 1, stride 2) on odd and even sizes, non-square windows.
  const cases: [number[], [number, number], [number, number], [number, number]][] = [
    [[2, 3, 13, 17], [3, 3], [2, 2], [1, 1]],
    [[1, 4, 8, 8], [3, 3], [2, 2], [1, 1]],
    [[2, 5, 7, 5], [1, 1], [2, 2], [0, 0]],
    [[1, 3, 6, 10], [1, 1], [2, 2], [0, 0]],
    [[1, 2, 9, 11], [2, 2], [2, 2], [0, 0]],
    [[3, 2, 5, 9], [3, 2], [1, 2], [1, 1]],
    [[1, 1, 4, 4], [4, 4], [1, 1], [2, 2]],
  ];

  it.each(cases)('%j kernel %j stride %j padding %j is exact', async (shape, k, s, p) => {
    const rt = await runtime();
    const x = randomTensor(rt, shape, 51);
    const y = maxPool2d(x.t, { kernelSize: k, stride: s, padding: p });
    const ref = maxPoolRef(x.data, shape, k, s, p);
    expect(y.shape).toEqual(ref.shape);
    expectClose(await y.toArray(), ref.y, { label: `max_pool ${shape}`, relL2: 0 });
    x.t.dispose();
    y.dispose();
  });

  it('stride defaults to the kernel, padding to 0', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [1, 2, 6, 6], 52);
    const y = maxPool2d(x.t, { kernelSize: 2 });
    expectClose(await y.toArray(), maxPoolRef(x.data, [1, 2, 6, 6], [2, 2], [2, 2], [0, 0]).y, { label: 'defaults', relL2: 0 });
  });

  it('past the binding limit and 65535 workgroups: runs of planes, folded grid', async () => {
    const rt = await runtime();
    // [1, 33, 1024, 1024] f32 = 132 MiB > 128 MiB: two runs of planes; a run of 32 planes
    // at kernel 3 stride 1 padding 1 has 33.5 M outputs = 131 072 workgroups of 256.
    const shape = [1, 33, 1024, 1024];
    const x = randomTensor(rt, shape, 53);
    expect(x.t.bytes).toBeGreaterThan(rt.limits.maxStorageBufferBindingSize);
    expect(rt.grid(Math.ceil((32 * 1024 * 1024) / 256))[1]).toBeGreaterThan(1);
    const y = maxPool2d(x.t, { kernelSize: 3, stride: 1, padding: 1 });
    const ref = maxPoolRef(x.data, shape, [3, 3], [1, 1], [1, 1]);
    const got = await y.toArray();
    let bad = -1;
    for (let i = 0; i < got.length && bad < 0; i++) if (got[i] !== ref.y[i]) bad = i;
    expect(bad, 'first wrong element').toBe(-1);
    x.t.dispose();
    y.dispose();
  });

  it('f16 is exact', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const shape = [1, 3, 7, 9];
    const x = Tensor.from(rt, randomArray(189, 54), shape, 'f16');
    const y = maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 });
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), maxPoolRef(await x.toArray(), shape, [3, 3], [2, 2], [1, 1]).y, { label: 'max_pool f16', relL2: 0 });
  });

  it('rejects bad shapes and options', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [1, 1, 4, 4], 55).t;
    expect(() => maxPool2d(x.reshape([1, 16]), { kernelSize: 2 })).toThrow(ShapeError);
    expect(() => maxPool2d(x, { kernelSize: 2, padding: 2 })).toThrow(InputError);
    expect(() => maxPool2d(x, { kernelSize: 0 })).toThrow(InputError);
    expect(() => maxPool2d(x, { kernelSize: 5 })).toThrow(InputError);
  });
});
