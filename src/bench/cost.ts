// Analytic cost of one dispatch, from its kernel entry point, override constants and
// Params fields as the op recorded them (gpu/profiler.ts DispatchInfo): the op kind it
// counts under, a readable shape, useful FLOPs and compulsory bytes. One table, here,
// for every kernel; test/bench/layers.test.ts runs the real ops and checks the decoded
// numbers against hand-computed ones, so a change to an op's Params layout fails there.
//
// Conventions (what "useful" means):
//   - products: 2 flops per multiply-add (matmul 2*B*M*N*K, conv 2*N*Cout*Ho*Wo*Cin*KH*KW,
//     attention 4*B*H*D per (query, key) pair: QK^T and PV; causal counts unmasked pairs);
//     epilogues (bias, activation, residual) are not counted;
//   - attention backward: the query kernel 6 and the key kernel 8 flops per pair and head
//     dimension (each recomputes the scores; dq, dk, dv and dP as written);
//   - norms: 4 flops per element for the statistics and 4 to apply them (+1 for a fused
//     activation); layer norm does both in one kernel (8); softmax 5 per element;
//     elementwise ops 1 per output element (+1 with an activation); GEGLU 2 per output;
//     Adam 12 per parameter; copies, pads, resizes, embeddings and fills 0;
//   - bytes: each distinct bound range once (inputs read once, outputs written once; an
//     accumulating output also read), except where the binding is wider than what the
//     kernel touches (slices, pads, embedding rows): there the touched elements.
import type { DispatchInfo } from '../gpu/profiler.js';
import type { Param } from '../gpu/params.js';

export interface DispatchCost {
  /** Op kind the totals group by: 'matmul', 'conv2d', 'attention', 'group_norm', ... */
  op: string;
  shape: string;
  flops: number;
  bytes: number;
}

/** A Params field as a number (F32/I32 wrappers unwrapped). */
const num = (p: Param | undefined): number => (p === undefined ? 0 : typeof p === 'number' ? p : p.value);

type Rule = (p: (i: number) => number, info: DispatchInfo, el: number) => Omit<DispatchCost, 'op'> & { op?: string };

/** Unmasked (query, key) pairs of causal attention as the kernels and the float64
 *  reference mask it (keys j > i masked, top-left aligned): query i sees keys 0..min(i, Lk - 1). */
export function causalPairs(Lq: number, Lk: number): number {
  let pairs = 0;
  for (let i = 0; i < Lq; i++) pairs += Math.min(Lk, i + 1);
  return pairs;
}

const uniq = (info: DispatchInfo) => info.uniqueBytes;

function matmulForward(p: (i: number) => number, info: DispatchInfo, el: number): Omit<DispatchCost, 'op'> {
  const [M, N, K, batch, aStride, bStride] = [p(0), p(1), p(2), p(3), p(4), p(5)];
  const o = info.overrides;
  const out = batch * M * N;
  const bytes = el * ((aStride ? batch : 1) * M * K + (bStride ? batch : 1) * K * N + out * (o.ACCUMULATE ? 2 : 1)
    + (o.HAS_BIAS ? (o.BIAS_ROWS ? M : N) : 0) + (o.HAS_RESIDUAL ? out : 0));
  return { shape: `B${batch} M${M} N${N} K${K}${o.TRANS_A ? ' tA' : ''}${o.TRANS_B ? ' tB' : ''}`, flops: 2 * batch * M * N * K, bytes };
}

function convForward(p: (i: number) => number, info: DispatchInfo, el: number): Omit<DispatchCost, 'op'> {
  const [cin, cout, hp, wp, ho, wo, batch] = [p(0), p(1), p(2), 4 * p(3), p(4), p(5), p(9)];
  const o = info.overrides;
  const [kh, kw, s] = [o.KH, o.KW, o.STRIDE];
  const out = batch * cout * ho * wo;
  const bytes = el * (batch * cin * hp * wp + cout * cin * kh * kw + (o.HAS_BIAS ? cout : 0) + out * (o.HAS_RESIDUAL ? 2 : 1));
  return { shape: `N${batch} ${cin}x${hp}x${wp}->${cout}x${ho}x${wo} k${kh}x${kw} s${s}`, flops: 2 * out * cin * kh * kw, bytes };
}

/** [B, H, Lq, Lk, blocks, scale, D4]: D from the D4 override (the probs entry has no D4 field). */
function attentionDims(p: (i: number) => number, info: DispatchInfo) {
  const [B, H, Lq, Lk] = [p(0), p(1), p(2), p(3)];
  const D = 4 * info.overrides.D4;
  const pairs = info.overrides.CAUSAL ? causalPairs(Lq, Lk) : Lq * Lk;
  return { B, H, Lq, Lk, D, pairs, shape: `B${B} H${H} Lq${Lq} Lk${Lk} D${D}${info.overrides.CAUSAL ? ' causal' : ''}` };
}

function groupNormShape(p: (i: number) => number): { rows: number; M: number; shape: string } {
  const [rows, M, S, cg, C] = [p(0), p(1), p(4), p(6), p(7)];
  const G = C / cg;
  return { rows, M, shape: `N${rows / G} C${C} G${G} S${S}` };
}

const RULES: Record<string, Rule> = {
  matmul_forward: matmulForward,
  matmul_backward_bias: (p, info, el) => ({ op: 'bias_grad', shape: `${p(0)}x${p(1)}`, flops: p(0) * p(1), bytes: el * (p(0) * p(1) + p(1) * (info.overrides.ACCUMULATE ? 2 : 1)) }),
  conv2d_forward: convForward,
  // Variant igemm (conv2d_igemm.wgsl): the same fields, its row length in elements.
  conv2d_igemm_forward: (p, info, el) => ({ op: 'conv2d', ...convForward((i) => (i === 3 ? p(3) / 4 : p(i)), info, el) }),
  conv2d_igemm_nhwc: (p, info, el) => ({ op: 'conv2d', ...convForward((i) => (i === 3 ? p(3) / 4 : p(i)), info, el) }),
  // Its channels-last input copy and weight packing: data movement, like the padding copy.
  conv2d_igemm_pad_nhwc: (p, _info, el) => ({ op: 'conv2d_pad', shape: `${p(0) / (p(4) * p(5) * p(1))}x${p(1)}x${p(2)}x${p(3)}->${p(4)}x${p(5)} nhwc`, flops: 0, bytes: el * (p(0) / (p(4) * p(5)) * p(2) * p(3) + p(0)) }),
  // p(0) counts vec4 (4 input channels per thread).
  conv2d_igemm_pack_weight4: (p, _info, el) => ({ op: 'conv2d_pad', shape: `${(4 * p(0)) / (p(1) * p(2))}x${p(1)}x${p(2)} pack`, flops: 0, bytes: 8 * el * p(0) }),
  // Variant gemm (conv2d_gemm.wgsl, then matmul_forward labelled conv2d_gemm): the copies
  // as data movement; the product counts under conv2d (dispatchCost below).
  conv2d_im2col: (p, info, el) => {
    const [total, cin, h, w, wo, band] = [p(0), p(1), p(2), p(3), p(4), p(5)];
    const k = cin * info.overrides.KH * info.overrides.KW;
    const batch = total / (k * band);
    // Written: the whole matrix; read: the input planes (a band reads fewer of its rows).
    return { op: 'conv2d_pad', shape: `N${batch} ${cin}x${h}x${w}->${k}x${band / wo}x${wo} im2col`, flops: 0, bytes: el * (total + Math.min(total, batch * cin * h * w)) };
  },
  conv2d_gemm_band: (p, info, el) => ({ op: 'conv2d_pad', shape: `${p(0) / p(1)}x${p(1)} ${info.overrides.TO_NCHW ? 'paste' : 'crop'}`, flops: 0, bytes: 2 * el * p(0) }),
  conv2d_pad_input: (p, _info, el) => {
    const [total, hs, ws, hd, wd] = [p(0), p(1), p(2), p(3), p(4)];
    const planes = total / (hd * wd);
    return { op: 'conv2d_pad', shape: `${planes}x${hs}x${ws}->${hd}x${wd}`, flops: 0, bytes: el * (planes * hs * ws + total) };
  },
  conv2d_flip_weight: (p, _info, el) => ({ op: 'conv2d_backward', shape: `${p(1)}x${p(2)}`, flops: 0, bytes: 2 * el * p(0) }),
  conv2d_backward_weight: (p, info, el) => {
    const [cin, cout, hp, wp, ho, wo, batch] = [p(0), p(1), p(2), 4 * p(3), p(4), p(5), p(9)];
    const { KH: kh, KW: kw, ACCUMULATE: acc } = info.overrides;
    const bytes = el * (batch * cin * hp * wp + batch * cout * ho * wo + cout * cin * kh * kw * (acc ? 2 : 1));
    return { op: 'conv2d_backward', shape: `N${batch} ${cin}x${hp}x${wp}->${cout}x${ho}x${wo} k${kh}x${kw}`, flops: 2 * batch * cout * ho * wo * cin * kh * kw, bytes };
  },
  conv2d_backward_bias: (p, info, el) => ({ op: 'bias_grad', shape: `N${p(2)} C${p(0)} S${p(1)}`, flops: p(0) * p(1) * p(2), bytes: el * (p(0) * p(1) * p(2) + p(0) * (info.overrides.ACCUMULATE ? 2 : 1)) }),
  attention_forward: (p, info, el) => {
    const a = attentionDims(p, info);
    const bytes = el * a.B * a.H * a.D * (2 * a.Lq + 2 * a.Lk) + 4 * a.B * a.H * a.Lq;
    return { shape: a.shape, flops: 4 * a.B * a.H * a.pairs * a.D, bytes };
  },
  attention_probs_forward: (p, info) => {
    const a = attentionDims(p, info);
    return { op: 'attention_probs', shape: a.shape, flops: 2 * a.B * a.H * a.pairs * a.D, bytes: info.uniqueBytes };
  },
  attention_backward_query: (p, info) => {
    const a = attentionDims(p, info);
    return { op: 'attention_backward', shape: a.shape, flops: 6 * a.B * a.H * a.pairs * a.D, bytes: info.uniqueBytes };
  },
  attention_backward_key: (p, info) => {
    const a = attentionDims(p, info);
    return { op: 'attention_backward', shape: a.shape, flops: 8 * a.B * a.H * a.pairs * a.D, bytes: info.uniqueBytes };
  },
  group_norm_stats: (p, info) => {
    const g = groupNormShape(p);
    return { op: 'group_norm', shape: g.shape, flops: 4 * g.rows * g.M, bytes: info.uniqueBytes };
  },
  group_norm_finalize: (p, info) => ({ op: 'group_norm', shape: groupNormShape(p).shape, flops: 4 * p(0) * p(2), bytes: info.uniqueBytes }),
  group_norm_forward: (p, info) => {
    const g = groupNormShape(p);
    return { op: 'group_norm', shape: g.shape, flops: (info.overrides.ACT ? 5 : 4) * g.rows * g.M, bytes: info.uniqueBytes };
  },
  layer_norm_forward: (p, info) => ({ shape: `${p(0)}x${p(1)}`, flops: 8 * p(0) * p(1), bytes: info.uniqueBytes }),
  layer_norm_backward_input: (p, info) => ({ op: 'layer_norm_backward', shape: `${p(0)}x${p(1)}`, flops: 8 * p(0) * p(1), bytes: info.uniqueBytes }),
  layer_norm_backward_weight: (p, info) => ({ op: 'layer_norm_backward', shape: `${p(0)}x${p(1)}`, flops: 4 * p(0) * p(1), bytes: info.uniqueBytes }),
  batch_norm_stats: (p, info) => ({ op: 'batch_norm', shape: `N${p(0)} C${p(1)} S${p(2)}`, flops: 4 * p(0) * p(1) * p(2), bytes: info.uniqueBytes }),
  batch_norm_eval_stats: (p, info) => ({ op: 'batch_norm', shape: `C${p(1)}`, flops: 2 * p(1), bytes: info.uniqueBytes }),
  batch_norm_forward: (p, info) => ({ op: 'batch_norm', shape: `N${p(0)} C${p(1)} S${p(2)}`, flops: 4 * p(0) * p(1) * p(2), bytes: info.uniqueBytes }),
  batch_norm_backward_reduce: (p, info) => ({ op: 'batch_norm_backward', shape: `N${p(0)} C${p(1)} S${p(2)}`, flops: 4 * p(0) * p(1) * p(2), bytes: info.uniqueBytes }),
  batch_norm_backward_input: (p, info) => ({ op: 'batch_norm_backward', shape: `N${p(0)} C${p(1)} S${p(2)}`, flops: 5 * p(0) * p(1) * p(2), bytes: info.uniqueBytes }),
  softmax_forward: (p, info) => ({ shape: `${p(0)}x${p(1)}`, flops: 5 * p(0) * p(1), bytes: info.uniqueBytes }),
  softmax_backward_input: (p, info) => ({ op: 'softmax_backward', shape: `${p(0)}x${p(1)}`, flops: 4 * p(0) * p(1), bytes: info.uniqueBytes }),
  unary_forward: (p, info) => ({ op: 'elementwise', shape: `${p(0)}`, flops: (info.overrides.ACT ? 2 : 1) * p(0), bytes: info.uniqueBytes }),
  unary_backward: (p, info) => ({ op: 'elementwise_backward', shape: `${p(0)}`, flops: 3 * p(0), bytes: info.uniqueBytes }),
  binary_forward: (p, info) => ({ op: 'elementwise', shape: `${p(0)}`, flops: (info.overrides.ACT ? 2 : 1) * p(0), bytes: info.uniqueBytes }),
  geglu_forward: (p, info) => ({ op: 'geglu', shape: `${p(0)}`, flops: 2 * p(0), bytes: info.uniqueBytes }),
  layout_copy_forward: (p, _info, el) => ({ op: 'layout', shape: `copy ${p(0)}`, flops: 0, bytes: 2 * el * p(0) }),
  pad_forward: (p, _info, el) => ({ op: 'pad', shape: `${p(0)}`, flops: 0, bytes: 2 * el * p(0) }),
  embedding_forward: (p, info) => {
    const [out, dim] = [p(0), p(1)];
    const tableEl = info.dtype === 'f16' ? 2 : 4;
    return { op: 'embedding', shape: `${out / dim}x${dim}`, flops: 0, bytes: out * (tableEl + 4) + 4 * (out / dim) };
  },
  combine_forward: (p, info) => ({ op: 'combine', shape: `${p(0)} x${info.overrides.N}`, flops: 2 * info.overrides.N * p(0), bytes: info.uniqueBytes }),
  optim_adam: (p, info) => ({ op: 'optimizer', shape: `${p(0)}`, flops: 12 * p(0), bytes: info.uniqueBytes }),
  fill_forward: (p) => ({ op: 'fill', shape: `${p(0)}`, flops: 0, bytes: 4 * p(0) }),
};

/** Entry points that are another's twin (a vec4 path or a kernel variant): same Params,
 *  elements counted in vec4s where noted. */
const VEC4: Record<string, { base: string; elementsPerUnit: number }> = {
  group_norm_stats_vec4: { base: 'group_norm_stats', elementsPerUnit: 1 },
  group_norm_forward_vec4: { base: 'group_norm_forward', elementsPerUnit: 1 },
  softmax_forward_vec4: { base: 'softmax_forward', elementsPerUnit: 1 },
  geglu_forward_vec4: { base: 'geglu_forward', elementsPerUnit: 4 },
  layout_copy_forward_vec4: { base: 'layout_copy_forward', elementsPerUnit: 4 },
  combine_forward_vec4: { base: 'combine_forward', elementsPerUnit: 4 },
  conv2d_im2col4: { base: 'conv2d_im2col', elementsPerUnit: 4 },
  // Kernel variants (gpu/variants.ts) with the Params of the kernel they stand in for.
  matmul_tiled_forward: { base: 'matmul_forward', elementsPerUnit: 1 },
  softmax_subgroup_forward: { base: 'softmax_forward', elementsPerUnit: 1 },
  softmax_subgroup_forward_vec4: { base: 'softmax_forward', elementsPerUnit: 1 },
  group_norm_subgroup_stats: { base: 'group_norm_stats', elementsPerUnit: 1 },
  group_norm_subgroup_stats_vec4: { base: 'group_norm_stats', elementsPerUnit: 1 },
  layer_norm_subgroup_forward: { base: 'layer_norm_forward', elementsPerUnit: 1 },
  layer_norm_subgroup_backward_input: { base: 'layer_norm_backward_input', elementsPerUnit: 1 },
  attention_tiled_forward: { base: 'attention_forward', elementsPerUnit: 1 },
  attention_rows4_forward: { base: 'attention_forward', elementsPerUnit: 1 },
  attention_rows4_chunked: { base: 'attention_forward', elementsPerUnit: 1 },
};

/** The op kind of an entry point without a rule: its family, '_backward' kept apart. */
function defaultOp(info: DispatchInfo): string {
  const fam = info.family.replace(/_backward$/, '');
  return info.entry.includes('backward') ? `${fam}_backward` : fam;
}

/** The cost of one dispatch. Entries without a rule count 0 flops and the distinct bound
 *  bytes, with the label's bracketed part as the shape. */
export function dispatchCost(info: DispatchInfo, label = ''): DispatchCost {
  const el = info.dtype === 'f16' ? 2 : 4;
  const twin = VEC4[info.entry];
  const rule = RULES[twin?.base ?? info.entry];
  if (!rule) {
    const shape = label.match(/\[(.*)\]$/)?.[1] ?? '';
    return { op: defaultOp(info), shape, flops: 0, bytes: uniq(info) };
  }
  // vec4 twins whose first field counts vec4 units: scale it to elements.
  const scale0 = twin?.elementsPerUnit ?? 1;
  const p = (i: number) => (i === 0 ? scale0 * num(info.params[0]) : num(info.params[i]));
  const c = rule(p, info, el);
  // conv2d's gemm variant runs the matmul kernels under its own label: a convolution.
  const op = label.startsWith('conv2d_gemm[') ? 'conv2d' : c.op ?? (twin?.base ?? info.entry).replace(/_forward$/, '');
  return { op, shape: c.shape, flops: c.flops, bytes: c.bytes };
}
