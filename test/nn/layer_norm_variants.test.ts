// The layer-norm variant adapters with `subgroups` run (gpu/variants.ts 'subgroup':
// shaders/layer_norm_subgroup.wgsl for the forward and the input backward), forced on
// this adapter and checked against the float64 reference; each case asserts that the
// subgroup kernels are the ones that ran (the weight backward has no variant).
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.js';
import { layerNorm, layerNormBackward } from '../../src/nn/layer_norm.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { layerNormBackwardRef, layerNormRef } from '../../src/ref/layer_norm.js';
import { expectClose, randomArray, randomTensor, requireF16, runtime, TOL } from '../helpers.js';
import { forced, requireSubgroups } from './forced.js';

const subgroup = <R>(rt: Runtime, fn: () => R): R =>
  forced(
    rt, { layer_norm: 'subgroup' },
    { watch: ['layer_norm_'], families: ['layer_norm_subgroup'], except: ['layer_norm_backward_weight'] }, fn,
  );

describe('layerNorm variant subgroup (forced)', () => {
  // CLIP's 768, a ragged 37 (fewer than the workgroup), 2053 (several strides, ragged).
  for (const [rows, D] of [[5, 768], [7, 37], [3, 2053]]) {
    it(`forward and input backward rows=${rows} D=${D} match float64`, async (ctx) => {
      const rt = await runtime();
      requireSubgroups(rt, ctx);
      const x = randomTensor(rt, [rows, D], D, -2, 3);
      const w = randomTensor(rt, [D], 1, 0.5, 1.5);
      const b = randomTensor(rt, [D], 2);
      const dy = randomTensor(rt, [rows, D], 3);
      const { y, mean, rstd } = subgroup(rt, () => layerNorm(x.t, w.t, b.t, 1e-5));
      const ref = layerNormRef(x.data, rows, D, w.data, b.data, 1e-5);
      expectClose(await y.toArray(), ref.y, { label: `subgroup layerNorm ${rows}x${D}`, relL2: TOL.reduction });
      expectClose(await mean.toArray(), ref.mean, { label: 'subgroup mean', relL2: TOL.reduction });
      expectClose(await rstd.toArray(), ref.rstd, { label: 'subgroup rstd', relL2: TOL.reduction });
      const g = subgroup(rt, () => layerNormBackward(x.t, w.t, mean, rstd, dy.t));
      const gref = layerNormBackwardRef(x.data, rows, D, w.data, dy.data, 1e-5);
      expectClose(await g.dx.toArray(), gref.dx, { label: `subgroup dx ${rows}x${D}`, relL2: TOL.reduction });
      expectClose(await g.dweight.toArray(), gref.dweight, { label: 'dweight', relL2: TOL.reduction });
    });
  }

  it('keeps precision for a large mean (two-pass variance)', async (ctx) => {
    const rt = await runtime();
    requireSubgroups(rt, ctx);
    const x = randomTensor(rt, [4, 768], 3, 500, 501);
    const w = randomTensor(rt, [768], 4, 0.5, 1.5);
    const b = randomTensor(rt, [768], 5);
    const { y } = subgroup(rt, () => layerNorm(x.t, w.t, b.t, 1e-6));
    expectClose(await y.toArray(), layerNormRef(x.data, 4, 768, w.data, b.data, 1e-6).y, { label: 'subgroup layerNorm mean 500', relL2: 1e-4 });
  });

  it('folds more than 65535 rows into a 2-D grid', async (ctx) => {
    const rt = await runtime();
    requireSubgroups(rt, ctx);
    const [rows, D] = [65600, 5];
    const x = randomTensor(rt, [rows, D], 30);
    const w = randomTensor(rt, [D], 31, 0.5, 1.5);
    const b = randomTensor(rt, [D], 32);
    const dy = randomTensor(rt, [rows, D], 33);
    const { y, mean, rstd } = subgroup(rt, () => layerNorm(x.t, w.t, b.t, 1e-5));
    expectClose(await y.toArray(), layerNormRef(x.data, rows, D, w.data, b.data, 1e-5).y, { label: 'subgroup layerNorm 65600 rows', relL2: TOL.reduction });
    const g = subgroup(rt, () => layerNormBackward(x.t, w.t, mean, rstd, dy.t));
    expectClose(await g.dx.toArray(), layerNormBackwardRef(x.data, rows, D, w.data, dy.data, 1e-5).dx, { label: 'subgroup dx 65600 rows', relL2: TOL.reduction });
  });

  it('f16 storage matches float64 within the f16 tolerance', async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    requireSubgroups(rt, ctx);
    const xd = randomArray(3 * 77, 40, -2, 2);
    const wd = randomArray(77, 41, 0.5, 1.5);
    const bd = randomArray(77, 42);
    const [x, w, b] = [Tensor.from(rt, xd, [3, 77], 'f16'), Tensor.from(rt, wd, [77], 'f16'), Tensor.from(rt, bd, [77], 'f16')];
    const { y } = subgroup(rt, () => layerNorm(x, w, b, 1e-5));
    expect(y.dtype).toBe('f16');
    expectClose(await y.toArray(), layerNormRef(xd, 3, 77, wd, bd, 1e-5).y, { label: 'subgroup layerNorm f16', relL2: TOL.f16 });
  });
});
