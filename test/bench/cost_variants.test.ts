// bench/cost.ts prices the kernel variants a hardware adapter runs (gpu/variants.ts) as
// the kernels they stand in for: each op runs under the software adapter's choice and
// with the other variant forced, and the decoded op kind, shape and FLOPs must agree
// (bytes too where they are analytic), so `bench layers` on a GPU counts the same work.
import { describe, expect, it } from 'vitest';
import { dispatchCost, type DispatchCost } from '../../src/bench/cost.js';
import type { Runtime } from '../../src/gpu/runtime.js';
import type { VariantChoice } from '../../src/gpu/variants.js';
import { attention } from '../../src/nn/attention.js';
import { groupNorm } from '../../src/nn/group_norm.js';
import { layerNorm, layerNormBackward } from '../../src/nn/layer_norm.js';
import { matmul } from '../../src/nn/matmul.js';
import { softmax } from '../../src/nn/softmax.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { randomTensor, requireOrSkip, runtime } from '../helpers.js';

/** The costs of fn's dispatches (fills of poisoned allocations left out), in order. */
async function costs(rt: Runtime, fn: () => Tensor[]): Promise<(DispatchCost & { entry: string })[]> {
  const prof = rt.profiler ?? rt.useWallProfiler();
  await rt.sync();
  await prof.collect();
  prof.detail = true;
  prof.enabled = true;
  let outs: Tensor[] = [];
  try {
    outs = fn();
    await rt.sync();
  } finally {
    prof.enabled = false;
    prof.detail = false;
  }
  const recs = await prof.collectDispatches();
  for (const t of outs) t.dispose();
  return recs.filter((r) => r.info && !r.info.entry.startsWith('fill')).map((r) => ({ entry: r.info?.entry ?? '', ...dispatchCost(r.info!, r.label) }));
}

/** Runs fn under each choice and compares the decoded costs entry by entry. */
async function sameCosts(rt: Runtime, a: Partial<VariantChoice>, b: Partial<VariantChoice>, fn: () => Tensor[], bytes: boolean) {
  const ca = await costs(rt, () => rt.variants.with(a, fn));
  const cb = await costs(rt, () => rt.variants.with(b, fn));
  expect(cb.map((c) => c.entry)).not.toEqual(ca.map((c) => c.entry));
  expect(cb.length).toBe(ca.length);
  ca.forEach((x, i) => {
    const y = cb[i];
    expect([y.op, y.shape, y.flops], `${y.entry} vs ${x.entry}`).toEqual([x.op, x.shape, x.flops]);
    expect(y.flops).toBeGreaterThan(0);
    if (bytes) expect(y.bytes, `${y.entry} bytes`).toBe(x.bytes);
  });
}

describe('costs of the kernel variants', () => {
  it('matmul tiled and attention per_tile and rows4 count as the kernels they stand in for', async () => {
    const rt = await runtime();
    const a = randomTensor(rt, [2, 5, 7], 1).t;
    const b = randomTensor(rt, [6, 7], 2).t;
    await sameCosts(rt, { matmul: 'rows8' }, { matmul: 'tiled' }, () => [matmul(a, b, { transB: true })], true);
    const q = randomTensor(rt, [1, 9, 16], 3).t;
    const k = randomTensor(rt, [1, 13, 16], 4).t;
    await sameCosts(rt, { attention: 'per_key' }, { attention: 'per_tile' }, () => Object.values(attention(q, k, k, { heads: 2 })), true);
    await sameCosts(rt, { attention: 'per_key' }, { attention: 'rows4' }, () => Object.values(attention(q, k, k, { heads: 2 })), true);
    // Head dim 48: rows4's chunked entry.
    const q48 = randomTensor(rt, [1, 9, 96], 5).t;
    const k48 = randomTensor(rt, [1, 13, 96], 6).t;
    await sameCosts(rt, { attention: 'per_key' }, { attention: 'rows4' }, () => Object.values(attention(q48, k48, k48, { heads: 2 })), true);
  });

  it('subgroup softmax, group norm and layer norm count as their tree kernels', async (ctx) => {
    const rt = await runtime();
    requireOrSkip(ctx, rt.gpu.hasSubgroups, 'the adapter has no subgroups feature');
    const tree = { softmax: 'tree', group_norm: 'tree', layer_norm: 'tree' } as const;
    const sub = { softmax: 'subgroup', group_norm: 'subgroup', layer_norm: 'subgroup' } as const;
    for (const n of [12, 13]) {
      const x = randomTensor(rt, [3, n], 5).t;
      await sameCosts(rt, tree, sub, () => [softmax(x)], true);
    }
    // Group norm: the subgroup stats use smaller chunks, so its partials (bytes) differ.
    for (const s of [8, 7]) {
      const x = randomTensor(rt, [1, 4, s, 9], 6).t;
      const w = randomTensor(rt, [4], 7).t;
      await sameCosts(rt, tree, sub, () => [groupNorm(x, 2, w, w, 1e-5)], false);
    }
    const x = randomTensor(rt, [3, 10], 8).t;
    const w = randomTensor(rt, [10], 9).t;
    await sameCosts(rt, tree, sub, () => {
      const f = layerNorm(x, w, w, 1e-5);
      const g = layerNormBackward(x, w, f.mean, f.rstd, x);
      return [f.y, f.mean, f.rstd, g.dx, g.dweight, g.dbias];
    }, true);
  });
});
