// The softmax variant adapters with `subgroups` run (gpu/variants.ts 'subgroup',
// shaders/softmax_subgroup.wgsl), forced on this adapter and checked against the float64
// reference; each case asserts that the subgroup kernel is the one that ran.
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.js';
import { softmax } from '../../src/nn/softmax.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { softmaxRef } from '../../src/ref/softmax.js';
import { expectClose, randomTensor, requireF16, runtime, TOL } from '../helpers.js';
import { forced, requireSubgroups } from './forced.js';

const subgroup = <R>(rt: Runtime, fn: () => R): R =>
  forced(rt, { softmax: 'subgroup' }, { watch: ['softmax_'], families: ['softmax_subgroup'] }, fn);

describe('softmax variant subgroup (forced)', () => {
  // CLIP's 77 tokens (fewer than the workgroup), 1024 (vec4), 4097 (past 4096, no
  // multiple of any workgroup), 4100 (vec4 with a ragged last round), a ragged 3.
  for (const [rows, n, scale] of [[5, 77, 1], [3, 1024, 0.125], [2, 4097, 1], [2, 4100, 0.7], [9, 3, 2.5]]) {
    it(`forward rows=${rows} n=${n} scale=${scale} matches float64`, async (ctx) => {
      const rt = await runtime();
      requireSubgroups(rt, ctx);
      const { t, data } = randomTensor(rt, [rows, n], n, -6, 6);
      const y = subgroup(rt, () => softmax(t, scale));
      expect(y.shape).toEqual([rows, n]);
      expectClose(await y.toArray(), softmaxRef(data, rows, n, scale), { label: `subgroup softmax ${rows}x${n}`, relL2: TOL.reduction });
    });
  }

  it('is stable for large logits (max-subtracted)', async (ctx) => {
    const rt = await runtime();
    requireSubgroups(rt, ctx);
    const { t, data } = randomTensor(rt, [4, 300], 7, 80, 120);
    const y = await subgroup(rt, () => softmax(t)).toArray();
    expectClose(y, softmaxRef(data, 4, 300), { label: 'subgroup softmax large', relL2: TOL.reduction });
  });

  it('folds more than 65535 rows into a 2-D grid (scalar and vec4 entries)', async (ctx) => {
    const rt = await runtime();
    requireSubgroups(rt, ctx);
    const rows = 70001;
    const s = randomTensor(rt, [rows, 5], 9, -4, 4);
    expectClose(await subgroup(rt, () => softmax(s.t)).toArray(), softmaxRef(s.data, rows, 5), { label: 'subgroup softmax 70001x5', relL2: TOL.reduction });
    const v = randomTensor(rt, [rows, 4], 12, -4, 4);
    expectClose(await subgroup(rt, () => softmax(v.t)).toArray(), softmaxRef(v.data, rows, 4), { label: 'subgroup softmax vec4 70001x4', relL2: TOL.reduction });
  });

  it('f16 storage matches float64 within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    requireSubgroups(rt, ctx);
    const { data } = randomTensor(rt, [3, 333], 11, -4, 4);
    const x = Tensor.from(rt, data, [3, 333], 'f16');
    const y = subgroup(rt, () => softmax(x));
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), softmaxRef(data, 3, 333), { label: 'subgroup softmax f16', relL2: TOL.f16 });
  });
});
