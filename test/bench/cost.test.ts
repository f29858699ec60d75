// bench/cost.ts decodes what the real ops record (kernel entry, overrides, Params fields,
// binding sizes): each op runs with the profiler's detail on, and the decoded FLOPs and
// bytes are compared with values computed by hand from the op's shapes, so a change to
// an op's Params layout fails here. The conventions are cost.ts's header.
import { describe, expect, it } from 'vitest';
import { causalPairs, dispatchCost, type DispatchCost } from '../../src/bench/cost.js';
import type { DispatchTiming } from '../../src/gpu/profiler.js';
import type { Runtime } from '../../src/gpu/runtime.js';
import { attention } from '../../src/nn/attention.js';
import { conv2d } from '../../src/nn/conv2d.js';
import { unary } from '../../src/nn/elementwise.js';
import { groupNorm } from '../../src/nn/group_norm.js';
import { layerNorm } from '../../src/nn/layer_norm.js';
import { matmul } from '../../src/nn/matmul.js';
import { softmax } from '../../src/nn/softmax.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { randomTensor, runtime } from '../helpers.js';

/** Records `fn` with the profiler's detail on; returns the costs of the dispatches of
 *  `entries` (fills from the NaN-poisoned allocations are left out). */
async function costs(rt: Runtime, entries: RegExp, fn: () => Tensor[]): Promise<(DispatchCost & { entry: string })[]> {
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
  const recs: DispatchTiming[] = await prof.collectDispatches();
  for (const t of outs) t.dispose();
  return recs.filter((r) => r.info && entries.test(r.info.entry)).map((r) => ({ entry: r.info?.entry ?? '', ...dispatchCost(r.info!, r.label) }));
}

describe('dispatch costs of the real ops against hand-computed values', () => {
  it('matmul: 2*B*M*N*K; bytes of a, the shared b, the output and the bias', async () => {
    const rt = await runtime();
    const a = randomTensor(rt, [2, 5, 7], 1).t;
    const b = randomTensor(rt, [6, 7], 2).t; // weight layout [N, K], shared by both batch rows
    const bias = randomTensor(rt, [6], 3).t;
    const [c] = await costs(rt, /^matmul_forward$/, () => [matmul(a, b, { transB: true, bias })]);
    expect(c.op).toBe('matmul');
    expect(c.shape).toBe('B2 M5 N6 K7 tB');
    expect(c.flops).toBe(2 * 2 * 5 * 6 * 7);
    expect(c.bytes).toBe(4 * (2 * 5 * 7 + 6 * 7 + 2 * 5 * 6 + 6));
    for (const t of [a, b, bias]) t.dispose();
  });

  it('conv2d: 2*N*Cout*Ho*Wo*Cin*KH*KW; the zero-padding copy as its own data movement', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [2, 3, 9, 10], 4).t;
    const w = randomTensor(rt, [4, 3, 3, 3], 5).t;
    const bias = randomTensor(rt, [4], 6).t;
    const cs = await costs(rt, /^conv2d_/, () => [rt.variants.with({ conv2d: 'direct' }, () => conv2d(x, w, bias, { padding: 1 }))]);
    const conv = cs.find((c) => c.entry === 'conv2d_forward');
    const pad = cs.find((c) => c.entry === 'conv2d_pad_input');
    expect(conv?.flops).toBe(2 * 2 * 4 * 9 * 10 * 3 * 3 * 3);
    // The kernel reads the padded copy: 11 rows of 16 (12 rounded for the last quad's loads).
    expect(conv?.shape).toBe('N2 3x11x16->4x9x10 k3x3 s1');
    expect(conv?.bytes).toBe(4 * (2 * 3 * 11 * 16 + 4 * 3 * 3 * 3 + 4 + 2 * 4 * 9 * 10));
    expect(pad?.op).toBe('conv2d_pad');
    expect(pad?.flops).toBe(0);
    expect(pad?.bytes).toBe(4 * (2 * 3 * 9 * 10 + 2 * 3 * 11 * 16));
    // The implicit-GEMM variant: the same FLOPs; its padded copy needs no rounded rows.
    const ci = await costs(rt, /^conv2d_/, () => [rt.variants.with({ conv2d: 'igemm' }, () => conv2d(x, w, bias, { padding: 1 }))]);
    const ig = ci.find((c) => c.entry === 'conv2d_igemm_forward');
    expect(ig?.op).toBe('conv2d');
    expect(ig?.flops).toBe(2 * 2 * 4 * 9 * 10 * 3 * 3 * 3);
    expect(ig?.shape).toBe('N2 3x11x12->4x9x10 k3x3 s1');
    expect(ig?.bytes).toBe(4 * (2 * 3 * 11 * 12 + 4 * 3 * 3 * 3 + 4 + 2 * 4 * 9 * 10));
    // The im2col + matmul variant: the product (weight [4, 27] x cols [2, 27, 90], bias per
    // row) counts as the convolution; the im2col copy as data movement.
    const cg = await costs(rt, /^(conv2d_|matmul_forward)/, () => [rt.variants.with({ conv2d: 'gemm' }, () => conv2d(x, w, bias, { padding: 1 }))]);
    const mm = cg.find((c) => c.entry === 'matmul_forward');
    const im = cg.find((c) => c.entry === 'conv2d_im2col');
    expect(mm?.op).toBe('conv2d');
    expect(mm?.flops).toBe(2 * 2 * 4 * 9 * 10 * 3 * 3 * 3);
    expect(mm?.shape).toBe('B2 M4 N90 K27');
    expect(mm?.bytes).toBe(4 * (4 * 27 + 2 * 27 * 90 + 2 * 4 * 90 + 4));
    expect(im?.op).toBe('conv2d_pad');
    expect(im?.flops).toBe(0);
    expect(im?.shape).toBe('N2 3x9x10->27x9x10 im2col');
    expect(im?.bytes).toBe(4 * (2 * 27 * 90 + 2 * 3 * 9 * 10));
    // Output rows of a multiple of 4 take the vec4 entry, priced the same per element.
    const x8 = randomTensor(rt, [1, 3, 6, 8], 7).t;
    const c8 = await costs(rt, /^conv2d_im2col/, () => [rt.variants.with({ conv2d: 'gemm' }, () => conv2d(x8, w, bias, { padding: 1 }))]);
    expect(c8.map((c) => c.entry)).toEqual(['conv2d_im2col4']);
    expect(c8[0].shape).toBe('N1 3x6x8->27x6x8 im2col');
    expect(c8[0].bytes).toBe(4 * (27 * 48 + 3 * 6 * 8));
    x8.dispose();
    for (const t of [x, w, bias]) t.dispose();
  });

  it('attention: 4*B*H*D per (query, key) pair; causal counts the unmasked pairs', async () => {
    const rt = await runtime();
    const q = randomTensor(rt, [2, 6, 16], 7).t;
    const k = randomTensor(rt, [2, 9, 16], 8).t;
    const v = randomTensor(rt, [2, 9, 16], 9).t;
    // The per_key kernel (attention_forward), whose rule the variants reuse.
    const perKey = <R>(fn: () => R): R => rt.variants.with({ attention: 'per_key' }, fn);
    const [c] = await costs(rt, /^attention_forward$/, () => perKey(() => Object.values(attention(q, k, v, { heads: 2 }))));
    expect(c.shape).toBe('B2 H2 Lq6 Lk9 D8');
    expect(c.flops).toBe(4 * 2 * 2 * 6 * 9 * 8);
    expect(c.bytes).toBe(4 * (2 * 6 * 16 * 2 + 2 * 9 * 16 * 2) + 4 * 2 * 2 * 6);
    const s = randomTensor(rt, [1, 5, 8], 10).t;
    const [cc] = await costs(rt, /^attention_forward$/, () => perKey(() => Object.values(attention(s, s, s, { heads: 1, causal: true }))));
    expect(causalPairs(5, 5)).toBe(1 + 2 + 3 + 4 + 5);
    // top-left aligned like the kernels and src/ref/attention.ts (keys j > i masked)
    expect(causalPairs(2, 4)).toBe(1 + 2);
    expect(causalPairs(4, 2)).toBe(1 + 2 + 2 + 2);
    expect(cc.flops).toBe(4 * 1 * 1 * 15 * 8);
    for (const t of [q, k, v, s]) t.dispose();
  });

  it('group norm: 4 flops per element for the statistics, 4 (+1 with SiLU) to apply them', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [2, 8, 4, 4], 11).t;
    const w = randomTensor(rt, [8], 12).t;
    const b = randomTensor(rt, [8], 13).t;
    const cs = await costs(rt, /^group_norm_/, () => [groupNorm(x, 4, w, b, 1e-5, 'silu')]);
    const elems = 2 * 8 * 4 * 4;
    expect(cs.map((c) => c.op)).toEqual(['group_norm', 'group_norm', 'group_norm']);
    expect(cs.every((c) => c.shape === 'N2 C8 G4 S16')).toBe(true);
    expect(cs.find((c) => c.entry.startsWith('group_norm_stats'))?.flops).toBe(4 * elems);
    const apply = cs.find((c) => c.entry.startsWith('group_norm_forward'));
    expect(apply?.flops).toBe(5 * elems);
    // x, weight, bias, the [rows, 2] statistics and y, each once.
    expect(apply?.bytes).toBe(4 * (elems + 8 + 8 + 2 * 8 + elems));
    for (const t of [x, w, b]) t.dispose();
  });

  it('layer norm: 8 flops per element; x, weight, bias, y, mean and rstd once', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [3, 5, 12], 14).t;
    const w = randomTensor(rt, [12], 15).t;
    const b = randomTensor(rt, [12], 16).t;
    const [c] = await costs(rt, /^layer_norm_forward$/, () => Object.values(layerNorm(x, w, b, 1e-5)));
    expect(c.shape).toBe('15x12');
    expect(c.flops).toBe(8 * 15 * 12);
    expect(c.bytes).toBe(4 * (180 + 12 + 12 + 180 + 15 + 15));
    for (const t of [x, w, b]) t.dispose();
  });

  it('softmax and elementwise ops: per-element counts, vec4 entries counted in elements', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [6, 20], 17).t;
    const [sm] = await costs(rt, /^softmax_forward/, () => [softmax(x)]);
    expect(sm.op).toBe('softmax');
    expect(sm.flops).toBe(5 * 120);
    expect(sm.bytes).toBe(4 * 240);
    const [u] = await costs(rt, /^unary_forward$/, () => [unary(x, 'silu')]);
    expect(u.op).toBe('elementwise');
    expect(u.flops).toBe(2 * 120);
    expect(u.bytes).toBe(4 * 240);
    x.dispose();
  });
});
