// The group-norm variant adapters with `subgroups` run (gpu/variants.ts 'subgroup': the
// statistics pass of shaders/group_norm_subgroup.wgsl), forced on this adapter and
// checked against the float64 reference; each case asserts that the subgroup stats
// kernel is the one that ran.
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.js';
import { groupNorm } from '../../src/nn/group_norm.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { groupNormRef } from '../../src/ref/group_norm.js';
import { expectClose, randomArray, randomTensor, requireF16, runtime, TOL } from '../helpers.js';
import { forced, requireSubgroups } from './forced.js';

const subgroup = <R>(rt: Runtime, fn: () => R): R =>
  forced(rt, { group_norm: 'subgroup' }, { watch: ['group_norm_stats', 'group_norm_subgroup_stats'], families: ['group_norm_subgroup'] }, fn);

describe('groupNorm variant subgroup (forced)', () => {
  // SD's 320 channels / 32 groups on a ragged 9x7 map (rows of 630, fewer than a chunk);
  // a small odd case (rows shorter than the workgroup: idle subgroups merge zero
  // counts); rows of 5280 (two 4096-element chunks, the second partial) with vec4 and
  // scalar loads; a single element per row.
  const cases: [number, number, number[], number, 'silu' | 'none'][] = [
    [2, 320, [9, 7], 32, 'silu'],
    [3, 12, [5, 7], 3, 'none'],
    [2, 8, [33, 40], 2, 'silu'],
    [1, 6, [31, 43], 1, 'none'],
    [2, 6, [], 6, 'none'],
  ];
  for (const [N, C, spatial, G, act] of cases) {
    it(`N=${N} C=${C} spatial=${spatial.join('x') || '-'} groups=${G} act=${act} matches float64`, async (ctx) => {
      const rt = await runtime();
      requireSubgroups(rt, ctx);
      const S = spatial.reduce((a, b) => a * b, 1);
      const x = randomTensor(rt, [N, C, ...spatial], C + S, -2, 3);
      const w = randomTensor(rt, [C], 2, 0.5, 1.5);
      const b = randomTensor(rt, [C], 3);
      const y = subgroup(rt, () => groupNorm(x.t, G, w.t, b.t, 1e-5, act));
      expect(y.shape).toEqual([N, C, ...spatial]);
      const ref = groupNormRef(x.data, N, C, S, G, w.data, b.data, 1e-5, act);
      expectClose(await y.toArray(), ref, { label: `subgroup groupNorm ${C}/${G} ${spatial}`, relL2: TOL.reduction });
    });
  }

  it('keeps precision for a large mean (no E[x^2] - E[x]^2 cancellation)', async (ctx) => {
    const rt = await runtime();
    requireSubgroups(rt, ctx);
    const x = randomTensor(rt, [1, 8, 70, 70], 5, 1000, 1001);
    const w = randomTensor(rt, [8], 6, 0.5, 1.5);
    const b = randomTensor(rt, [8], 7);
    const y = await subgroup(rt, () => groupNorm(x.t, 2, w.t, b.t, 1e-6)).toArray();
    // The floor is the f32 mean itself: one ulp of 1000 (6.1e-5) times rstd (~3.5) moves
    // y by ~2.1e-4 of its spread, and with two groups relL2 is decided by two means. Over
    // seeds 5-16 both variants land at 2e-5 .. 1.7e-4 (the tree one above 1e-4 for seeds
    // 8, 10 and 16), so 3e-4 allows about 1.4 ulp; E[x^2] - E[x]^2 would be off by > 1e-2.
    expectClose(y, groupNormRef(x.data, 1, 8, 4900, 2, w.data, b.data, 1e-6), { label: 'subgroup groupNorm mean 1000', relL2: 3e-4 });
  });

  it('folds more than 65535 stats workgroups into a 2-D grid', async (ctx) => {
    const rt = await runtime();
    requireSubgroups(rt, ctx);
    const x = randomTensor(rt, [66000, 2, 2], 8);
    const w = randomTensor(rt, [2], 9);
    const b = randomTensor(rt, [2], 10);
    const y = await subgroup(rt, () => groupNorm(x.t, 1, w.t, b.t, 1e-5, 'silu')).toArray();
    expectClose(y, groupNormRef(x.data, 66000, 2, 2, 1, w.data, b.data, 1e-5, 'silu'), { label: 'subgroup groupNorm 66000 rows', relL2: TOL.reduction });
  });

  it('f16 storage matches float64 within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    requireSubgroups(rt, ctx);
    const xd = randomArray(2 * 40 * 37, 14, -2, 2);
    const wd = randomArray(40, 15, 0.5, 1.5);
    const bd = randomArray(40, 16);
    const x = Tensor.from(rt, xd, [2, 40, 37], 'f16');
    const weight = Tensor.from(rt, wd, [40], 'f16');
    const bias = Tensor.from(rt, bd, [40], 'f16');
    const y = subgroup(rt, () => groupNorm(x, 8, weight, bias, 1e-5, 'silu'));
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), groupNormRef(xd, 2, 40, 37, 8, wd, bd, 1e-5, 'silu'), { label: 'subgroup groupNorm f16', relL2: TOL.f16 });
  });
});
