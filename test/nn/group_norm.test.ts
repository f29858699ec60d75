import { describe, expect, it } from 'vitest';
import { groupNorm } from '../../src/nn/group_norm.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { groupNormRef } from '../../src/ref/group_norm.js';
import { expectClose, randomArray, randomTensor, requireF16, runtime, TOL } from '../helpers.js';

describe('groupNorm', () => {
  // SD's 320 channels / 32 groups on a ragged 9x7 map; a small odd case; rows past one
  // 4096-element stats chunk (17 chunks) with planes past one apply chunk (65x65).
  it.each([
    [2, 320, [9, 7], 32, 'silu'],
    [2, 320, [9, 7], 32, 'none'],
    [3, 12, [5, 7], 3, 'silu'],
    [1, 64, [65, 65], 4, 'silu'],
    [2, 6, [], 3, 'none'],
  ] as const)('N=%i C=%i spatial=%j groups=%i act=%s matches float64', async (N, C, spatial, G, act) => {
    const rt = await runtime();
    const S = spatial.reduce((a, b) => a * b, 1);
    const x = randomTensor(rt, [N, C, ...spatial], C + S, -2, 3);
    const w = randomTensor(rt, [C], 2, 0.5, 1.5);
    const b = randomTensor(rt, [C], 3);
    const y = groupNorm(x.t, G, w.t, b.t, 1e-5, act);
    expect(y.shape).toEqual([N, C, ...spatial]);
    const ref = groupNormRef(x.data, N, C, S, G, w.data, b.data, 1e-5, act);
    expectClose(await y.toArray(), ref, { label: `groupNorm ${C}/${G} ${spatial}`, relL2: TOL.reduction });
  });

  it('keeps precision for a large mean (no E[x^2] - E[x]^2 cancellation)', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [1, 8, 70, 70], 5, 1000, 1001);
    const w = randomTensor(rt, [8], 6, 0.5, 1.5);
    const b = randomTensor(rt, [8], 7);
    const y = await groupNorm(x.t, 2, w.t, b.t, 1e-6).toArray();
    // Inputs near 1000 carry f32 rounding of ~3e-5 relative to a spread of 1, so the
    // bound is looser than TOL.reduction but far below a cancelling formula's error.
    expectClose(y, groupNormRef(x.data, 1, 8, 4900, 2, w.data, b.data, 1e-6), { label: 'groupNorm mean 1000', relL2: 1e-4 });
  });

  it('folds more than 65535 apply workgroups into a 2-D grid', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [16400, 4, 3], 8);
    const w = randomTensor(rt, [4], 9);
    const b = randomTensor(rt, [4], 10);
    const y = await groupNorm(x.t, 2, w.t, b.t, 1e-5, 'silu').toArray();
    expectClose(y, groupNormRef(x.data, 16400, 4, 3, 2, w.data, b.data, 1e-5, 'silu'), { label: 'groupNorm 65600 planes', relL2: TOL.reduction });
    x.t.dispose();
  });

  it('f16 storage matches float64 within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const xd = randomArray(2 * 40 * 37, 14, -2, 2);
    const wd = randomArray(40, 15, 0.5, 1.5);
    const bd = randomArray(40, 16);
    const x = Tensor.from(rt, xd, [2, 40, 37], 'f16');
    const y = groupNorm(x, 8, Tensor.from(rt, wd, [40], 'f16'), Tensor.from(rt, bd, [40], 'f16'), 1e-5, 'silu');
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), groupNormRef(xd, 2, 40, 37, 8, wd, bd, 1e-5, 'silu'), { label: 'groupNorm f16', relL2: TOL.f16 });
  });

  it('rejects channels that do not split into the groups', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [1, 10, 4], 17);
    const w = randomTensor(rt, [10], 18);
    expect(() => groupNorm(x.t, 3, w.t, w.t, 1e-5)).toThrow(/groups must divide C/);
  });
});
