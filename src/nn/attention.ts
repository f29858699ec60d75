// Fused multi-head attention: softmax(scale * q k^T) v per head, its probabilities
// averaged over heads (the DAAM baseline), and its backward.
// Kernels: shaders/attention.wgsl (forward, online softmax), attention_probs.wgsl,
// attention_backward.wgsl. None of them stores the [B, H, Lq, Lk] score matrix. The
// forward has three variants (rt.variants.attention, gpu/variants.ts): 'rows4' (the
// software adapter's, shaders/attention_rows4.wgsl: attention.wgsl's mapping with four
// query rows per thread), 'per_key' (attention.wgsl) and 'per_tile' (hardware adapters,
// shaders/attention_tiled.wgsl: one max and rescale per key tile).
//
// Shapes (diffusers' to_q/to_k/to_v outputs, no permute): q [B, Lq, H*D],
// k and v [B, Lk, H*D], head h in columns h*D .. h*D + D - 1; out [B, Lq, H*D];
// lse [B, H, Lq] (f32 whatever the input dtype); probsMean [B, Lq, Lk].
import { LimitError, ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import type { Runtime } from '../gpu/runtime.js';
import { Tensor } from '../tensor/tensor.js';

export interface AttentionOptions {
  heads: number;
  /** Default 1/sqrt(D). */
  scale?: number;
  /** Key j > query i masked (CLIP text encoder). */
  causal?: boolean;
}

/** The kernels keep a query (or key) row in registers of fixed size (DMAX4 in WGSL). */
const MAX_HEAD_DIM = 160;
/** Rows per workgroup: 64, or 8 / 32 for short sequences (grounding queries, 1..20) so
 *  most lanes are not idle. Few sizes, so few pipelines to compile per head dim. */
function rowsPerWorkgroup(n: number): number {
  return n <= 8 ? 8 : n <= 32 ? 32 : 64;
}

/** Threads per workgroup of the rows4 forward (four query rows each). Causal: 8 (blocks of
 *  32 rows), since a block scores every key up to its last row: CLIP's 77 tokens in one
 *  block would score 96 x 77 pairs for the 3003 the mask keeps, in blocks of 32 rows 5632
 *  (measured 1.5x faster than one block at CLIP's shape on lavapipe). Otherwise the
 *  fewest blocks of at most 256 rows, each with as few threads (a multiple of 8, a CPU
 *  driver's SIMD width) as cover it, so short sequences leave few rows idle (77
 *  queries: 24 threads and 19 idle rows, where 64 threads would leave 179). At most 8
 *  sizes. */
function rows4Workgroup(n: number, causal: boolean): number {
  if (causal) return 8;
  const blocks = Math.ceil(n / 256);
  return Math.min(64, 8 * Math.ceil(n / (4 * blocks) / 8));
}

/** Head-dim chunk (vec4) of the rows4 forward past MAX_UNROLLED_HEAD_DIM: the largest
 *  divisor of D4 up to 10 (CHMAX in WGSL; 64 -> 8, 80 and 160 -> 10). */
function headChunk(d4: number): number {
  let ch = Math.min(10, d4);
  while (d4 % ch !== 0) ch--;
  return ch;
}

const fmt = (t: Tensor) => `[${t.shape.join(',')}]`;

interface Dims {
  B: number;
  Lq: number;
  Lk: number;
  H: number;
  D: number;
  scale: number;
  dtype: 'f32' | 'f16';
  causal: boolean;
}

function dims(what: string, q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Dims {
  if (q.dtype !== 'f32' && q.dtype !== 'f16') throw new ShapeError(`${what}: q must be a float tensor, got ${q.toString()}`);
  for (const [name, t] of [['k', k], ['v', v]] as const) {
    if (t.dtype !== q.dtype) throw new ShapeError(`${what}: ${name} is ${t.toString()} but q is ${q.toString()}; cast so the dtypes match`);
  }
  if (q.shape.length !== 3 || k.shape.length !== 3 || v.shape.length !== 3) {
    throw new ShapeError(`${what}: expected q [B, Lq, H*D], k and v [B, Lk, H*D]; got q ${fmt(q)}, k ${fmt(k)}, v ${fmt(v)}`);
  }
  const [B, Lq, C] = q.shape;
  const Lk = k.shape[1];
  if (k.shape[0] !== B || k.shape[2] !== C || v.shape.some((d, i) => d !== k.shape[i])) {
    throw new ShapeError(`${what}: k ${fmt(k)} and v ${fmt(v)} must both be [${B}, Lk, ${C}] to match q ${fmt(q)}`);
  }
  const H = opts.heads;
  if (!Number.isInteger(H) || H < 1 || C % H !== 0) {
    throw new ShapeError(`${what}: heads=${H} must be a positive integer dividing the channel count ${C} of q ${fmt(q)}`);
  }
  const D = C / H;
  if (D % 4 !== 0) {
    throw new ShapeError(`${what}: head dim ${D} (= ${C} / ${H} heads) must be a multiple of 4 (the kernels load vec4); pad the projections`);
  }
  if (D > MAX_HEAD_DIM) throw new LimitError(`${what}: head dim ${D} exceeds the kernels' register tile of ${MAX_HEAD_DIM}; use more heads`);
  if (B === 0 || Lq === 0 || Lk === 0) throw new ShapeError(`${what}: empty batch or sequence: q ${fmt(q)}, k ${fmt(k)}`);
  return { B, Lq, Lk, H, D, scale: opts.scale ?? 1 / Math.sqrt(D), dtype: q.dtype, causal: opts.causal ?? false };
}

function sameShape(what: string, name: string, t: Tensor, like: readonly number[], dtype: string): void {
  if (t.dtype !== dtype || t.shape.length !== like.length || t.shape.some((d, i) => d !== like[i])) {
    throw new ShapeError(`${what}: ${name} must be ${dtype} [${like.join(',')}], got ${t.toString()}`);
  }
}

/** Workgroup memory per kernel for the two staged tiles (K and V, or Q and dout), in f32:
 *  well inside the 32 KiB that WebGPU guarantees, leaving room for small arrays. */
const TILE_BYTES = 20 * 1024;

/** Head dims whose loops are unrolled (UNROLL in WGSL). Unrolled loops keep the query
 *  row and accumulator in registers (about 3x faster at D = 40 on lavapipe) but take
 *  tens of seconds to compile there past D = 40; D = 160 is never unrolled by the
 *  driver anyway. 40 is SD 1.x's head dim at the largest (most expensive) resolution. */
const MAX_UNROLLED_HEAD_DIM = 40;

function overrides(d: Dims, wg: number, tiled = true): Record<string, number> {
  const o: Record<string, number> = { WG: wg, D4: d.D / 4, CAUSAL: d.causal ? 1 : 0 };
  if (tiled) {
    o.TK = Math.min(64, Math.floor(TILE_BYTES / (2 * 4 * d.D)));
    o.UNROLL = d.D <= MAX_UNROLLED_HEAD_DIM ? 1 : 0;
  }
  return o;
}

/** Keys per tile of the per_tile forward: its K and V tiles (2 * 4 * D bytes per key)
 *  and its score columns (4 * WG bytes per key) within the adapter's workgroup memory,
 *  capped at 32 KiB (what WebGPU guarantees) and 64 keys. */
function perTileKeys(rt: Runtime, d: Dims, wg: number): number {
  const budget = Math.min(rt.limits.maxComputeWorkgroupStorageSize, 32 * 1024);
  return Math.max(1, Math.min(64, Math.floor(budget / (8 * d.D + 4 * wg))));
}

/** Fused: never materialises the [B,H,Lq,Lk] score matrix. lse [B, H, Lq] (log-sum-exp of
 *  the scaled scores per query row) is what the backward needs. */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): { out: Tensor; lse: Tensor } {
  const d = dims('attention', q, k, v, opts);
  const out = Tensor.empty(q.rt, q.shape, d.dtype, 'attention_out');
  const lse = Tensor.empty(q.rt, [d.B, d.H, d.Lq], 'f32', 'attention_lse');
  const variant = q.rt.variants.attention;
  let wg: number;
  let blocks: number;
  let spec: { family: string; entry: string; dtype: 'f32' | 'f16'; overrides: Record<string, number> };
  if (variant === 'rows4') {
    wg = rows4Workgroup(d.Lq, d.causal);
    blocks = Math.ceil(d.Lq / (4 * wg));
    spec = d.D <= MAX_UNROLLED_HEAD_DIM
      ? { family: 'attention_rows4', entry: 'attention_rows4_forward', dtype: d.dtype, overrides: overrides(d, wg) }
      : { family: 'attention_rows4', entry: 'attention_rows4_chunked', dtype: d.dtype,
          overrides: { ...overrides(d, wg), CH: headChunk(d.D / 4) } };
  } else {
    wg = rowsPerWorkgroup(d.Lq);
    blocks = Math.ceil(d.Lq / wg);
    spec = variant === 'per_tile'
      ? { family: 'attention_tiled', entry: 'attention_tiled_forward', dtype: d.dtype,
          overrides: { WG: wg, D4: d.D / 4, CAUSAL: d.causal ? 1 : 0, TK: perTileKeys(q.rt, d, wg) } }
      : { family: 'attention', entry: 'attention_forward', dtype: d.dtype, overrides: overrides(d, wg) };
  }
  q.rt.dispatch(
    spec,
    {
      params: [d.B, d.H, d.Lq, d.Lk, blocks, f32(d.scale), d.D / 4],
      bindings: [q.binding, k.binding, v.binding, out.binding, lse.binding],
      workgroups: d.B * d.H * blocks,
    },
  );
  return { out, lse };
}

/** attention() plus the attention probabilities averaged over heads, [B, Lq, Lk] (DAAM
 *  baseline), from a second pass over the keys that uses the final lse. Inference only. */
export function attentionWithProbs(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): { out: Tensor; lse: Tensor; probsMean: Tensor } {
  const { out, lse } = attention(q, k, v, opts);
  const d = dims('attentionWithProbs', q, k, v, opts);
  const probsMean = Tensor.empty(q.rt, [d.B, d.Lq, d.Lk], d.dtype, 'attention_probs_mean');
  const wg = rowsPerWorkgroup(d.Lk);
  const blocks = Math.ceil(d.Lk / wg);
  q.rt.dispatch(
    { family: 'attention_probs', entry: 'attention_probs_forward', dtype: d.dtype, overrides: overrides(d, wg, false) },
    {
      params: [d.B, d.H, d.Lq, d.Lk, blocks, f32(d.scale)],
      bindings: [q.binding, k.binding, lse.binding, probsMean.binding],
      workgroups: d.B * d.Lq * blocks,
    },
  );
  return { out, lse, probsMean };
}

/** Gradients of sum(dout * out) with out, lse from attention(q, k, v, opts):
 *  dq [B, Lq, H*D], dk and dv [B, Lk, H*D]. */
export function attentionBackward(
  q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor, opts: AttentionOptions,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const what = 'attentionBackward';
  const d = dims(what, q, k, v, opts);
  sameShape(what, 'out', out, q.shape, d.dtype);
  sameShape(what, 'dout', dout, q.shape, d.dtype);
  sameShape(what, 'lse', lse, [d.B, d.H, d.Lq], 'f32');
  const rt = q.rt;
  const dq = Tensor.empty(rt, q.shape, d.dtype, 'attention_dq');
  const dk = Tensor.empty(rt, k.shape, d.dtype, 'attention_dk');
  const dv = Tensor.empty(rt, v.shape, d.dtype, 'attention_dv');
  // delta_i = dout_i . out_i, written by the query kernel and read by the key kernel.
  const delta = Tensor.empty(rt, [d.B, d.H, d.Lq], 'f32', 'attention_delta');
  const params = (blocks: number) => [d.B, d.H, d.Lq, d.Lk, blocks, f32(d.scale), d.D / 4];

  const wgQ = rowsPerWorkgroup(d.Lq);
  const qBlocks = Math.ceil(d.Lq / wgQ);
  rt.dispatch(
    { family: 'attention_backward', entry: 'attention_backward_query', dtype: d.dtype, overrides: overrides(d, wgQ) },
    {
      params: params(qBlocks),
      bindings: [q.binding, k.binding, v.binding, out.binding, dout.binding, lse.binding, dq.binding, delta.binding],
      workgroups: d.B * d.H * qBlocks,
    },
  );
  const wgK = rowsPerWorkgroup(d.Lk);
  const kBlocks = Math.ceil(d.Lk / wgK);
  rt.dispatch(
    { family: 'attention_backward', entry: 'attention_backward_key', dtype: d.dtype, overrides: overrides(d, wgK) },
    {
      params: params(kBlocks),
      bindings: [q.binding, k.binding, v.binding, dout.binding, lse.binding, delta.binding, dk.binding, dv.binding],
      workgroups: d.B * d.H * kBlocks,
    },
  );
  delta.dispose();
  return { dq, dk, dv };
}
