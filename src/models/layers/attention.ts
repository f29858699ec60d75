// diffusers attention_processor.py Attention with the classic AttnProcessor (v0.25.1):
// the one attention module the UNet's transformer blocks and the VAE's mid block both
// build, configured like diffusers' constructor (cross_attention_dim, bias, out_bias,
// norm_num_groups, residual_connection, rescale_output_factor). CLIP's attention has
// other weight names (q_proj ... out_proj) and stays in clip.ts.
import { LimitError, ShapeError } from '../../gpu/errors.js';
import { attention, attentionWithProbs } from '../../nn/attention.js';
import { cast } from '../../nn/cast.js';
import { add, unary } from '../../nn/elementwise.js';
import { copyInto, permute, slice } from '../../nn/layout.js';
import { matmul } from '../../nn/matmul.js';
import { Module } from '../../nn/module.js';
import { softmax } from '../../nn/softmax.js';
import { scope } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';
import { Linear } from './linear.js';
import { moduleScope } from './module_scope.js';
import { GroupNorm } from './norms.js';

/** The fused attention kernel keeps a head in registers up to this size (nn/attention.ts). */
const FUSED_MAX_HEAD_DIM = 160;

export interface AttentionConfig {
  /** query_dim: channels of the hidden states. */
  queryDim: number;
  /** cross_attention_dim: channels of encoder_hidden_states (default queryDim). */
  crossAttentionDim?: number;
  heads: number;
  dimHead: number;
  /** bias: to_q/to_k/to_v biases (default false; the VAE's attention has them). */
  bias?: boolean;
  /** out_bias: to_out.0's bias (default true). */
  outBias?: boolean;
  /** norm_num_groups: a GroupNorm `group_norm` over the channels before the projections. */
  normNumGroups?: number;
  /** eps of group_norm (diffusers' default 1e-5; the VAE passes resnet_eps 1e-6). */
  eps?: number;
  /** residual_connection: the input is added to the output (the VAE's mid block). */
  residualConnection?: boolean;
  /** rescale_output_factor: (to_out + residual) is divided by it (default 1). */
  rescaleOutputFactor?: number;
}

export interface AttentionRunOptions {
  /** encoder_hidden_states [B, Lk, crossAttentionDim]; self-attention without. */
  encoderHiddenStates?: Tensor;
  /** The caller's skip connection, shaped like the output and added last (diffusers'
   *  BasicTransformerBlock adds it after the call); fused into to_out's epilogue. */
  residual?: Tensor;
  /** Receives the head-averaged probabilities [B, Lq, Lk] (DAAM), f32, inside the
   *  forward's scope: keep() what should outlive it. */
  onProbs?: (probsMean: Tensor) => void;
  /** Receives the per-head probabilities softmax(q k^T * scale) [rows, heads, Lq, Lk], f32, of
   *  batch rows [rows[0], rows[1]) (default all) inside the forward's scope (DAAM sums
   *  them). Computed apart from the output (matmul + softmax, the score tensor
   *  materialised: cheap for cross-attention's 77 keys); the output path is unchanged. */
  headProbs?: { rows?: readonly [number, number]; receive: (probs: Tensor) => void };
  /** @internal Tests: the matmul-softmax-matmul path (single head) even where the fused
   *  kernel fits. */
  unfusedAttention?: boolean;
  /** @internal Tests: a binding limit below the adapter's, forcing row-chunked scores. */
  maxBindingBytes?: number;
}

const sumOf = (a?: Tensor, b?: Tensor): Tensor | undefined => (a && b ? add(a, b) : a ?? b);

export class Attention extends Module {
  group_norm?: GroupNorm;
  to_q: Linear;
  to_k: Linear;
  to_v: Linear;
  /** to_out.1 is dropout (no weights). */
  to_out: [Linear];
  readonly heads: number;
  readonly dimHead: number;
  readonly scale: number;
  readonly residualConnection: boolean;
  readonly rescaleOutputFactor: number;

  constructor(readonly config: AttentionConfig) {
    super();
    const c = config;
    const inner = c.heads * c.dimHead;
    const cross = c.crossAttentionDim ?? c.queryDim;
    if (c.normNumGroups !== undefined) this.group_norm = new GroupNorm(c.normNumGroups, c.queryDim, c.eps ?? 1e-5);
    this.to_q = new Linear(c.queryDim, inner, { bias: c.bias ?? false });
    this.to_k = new Linear(cross, inner, { bias: c.bias ?? false });
    this.to_v = new Linear(cross, inner, { bias: c.bias ?? false });
    this.to_out = [new Linear(inner, c.queryDim, { bias: c.outBias ?? true })];
    this.heads = c.heads;
    this.dimHead = c.dimHead;
    this.scale = 1 / Math.sqrt(c.dimHead);
    this.residualConnection = c.residualConnection ?? false;
    this.rescaleOutputFactor = c.rescaleOutputFactor ?? 1;
  }

  /** Token input [B, L, queryDim] -> [B, L, queryDim], or, like diffusers' input_ndim 4,
   *  NCHW input [B, queryDim, H, W] -> the same shape over its H*W tokens. The output is
   *  (to_out(attn) + input if residual_connection) / rescale_output_factor + residual. */
  forward(x: Tensor, opts: AttentionRunOptions = {}): Tensor {
    const C = x.shape.length === 4 ? x.shape[1] : x.shape[2];
    if ((x.shape.length !== 3 && x.shape.length !== 4) || C !== this.config.queryDim) {
      throw new ShapeError(`Attention: expects [B, L, ${this.config.queryDim}] or [B, ${this.config.queryDim}, H, W], got ${x.toString()}`);
    }
    return moduleScope(this, x.rt, () => (x.shape.length === 4 ? this.forwardSpatial(x, opts) : this.forwardTokens(x, opts)));
  }

  private forwardTokens(x: Tensor, opts: AttentionRunOptions): Tensor {
    if (this.group_norm) throw new ShapeError(`Attention: group_norm (norm_num_groups) needs NCHW input [B, C, H, W], got ${x.toString()}`);
    return scope(() => {
      const context = opts.encoderHiddenStates ?? x;
      const attn = this.attend(this.to_q.forward(x), this.to_k.forward(context), this.to_v.forward(context), opts);
      const skip = this.residualConnection ? x : undefined;
      return this.output((residual) => this.to_out[0].forward(attn, { residual }), skip, opts.residual);
    });
  }

  private forwardSpatial(x: Tensor, opts: AttentionRunOptions): Tensor {
    const [B, C, H, W] = x.shape;
    const L = H * W;
    return scope(() => {
      // Tokens are the columns of [B, C, L]: transA reads them as rows without a permute.
      const hs = (this.group_norm ? this.group_norm.forward(x) : x).reshape([B, C, L]);
      const project = (lin: Linear) => moduleScope(lin, x.rt, () => matmul(hs, lin.weight.t, { transA: true, transB: true, bias: lin.bias?.t }));
      const ehs = opts.encoderHiddenStates;
      const k = ehs ? this.to_k.forward(ehs) : project(this.to_k);
      const v = ehs ? this.to_v.forward(ehs) : project(this.to_v);
      const attn = this.attend(project(this.to_q), k, v, opts);
      // to_out back in channel-major order: W [C, inner] x attn^T = [B, C, L]. Its bias
      // is per row there, so it rides on the residual added in the epilogue.
      const out = this.to_out[0];
      const bias = out.bias?.t.reshape([1, C, 1]);
      const product = (residual?: Tensor) => moduleScope(out, x.rt, () => {
        const y = matmul(out.weight.t, attn, { transB: true, residual: residual && bias ? add(residual, bias) : residual });
        return bias && !residual ? add(y, bias) : y;
      });
      const skip = this.residualConnection ? x.reshape([B, C, L]) : undefined;
      return this.output(product, skip, opts.residual?.reshape([B, C, L])).reshape([B, C, H, W]);
    });
  }

  /** (product + skip) / rescale + residual; with rescale 1 one fused residual. */
  private output(product: (residual?: Tensor) => Tensor, skip?: Tensor, residual?: Tensor): Tensor {
    const r = this.rescaleOutputFactor;
    if (r === 1) return product(sumOf(skip, residual));
    const y = unary(product(skip), 'none', 1 / r);
    return residual ? add(y, residual) : y;
  }

  /** softmax(q k^T * scale) per head of batch rows [r0, r1): q [B, Lq, inner], k [B, Lk,
   *  inner] -> [r1 - r0, heads, Lq, Lk]. */
  private probsPerHead(q: Tensor, k: Tensor, rows?: readonly [number, number]): Tensor {
    const [B, Lq] = q.shape;
    const Lk = k.shape[1];
    const [r0, r1] = rows ?? [0, B];
    if (!Number.isInteger(r0) || !Number.isInteger(r1) || r0 < 0 || r1 > B || r0 >= r1) {
      throw new ShapeError(`Attention: probability rows [${r0}, ${r1}) are not a range of the batch of ${B}`);
    }
    const n = r1 - r0;
    const bytes = n * this.heads * Lq * Lk * 4;
    const limit = q.rt.limits.maxStorageBufferBindingSize;
    if (bytes > limit) {
      throw new LimitError(`Attention: per-head probabilities of ${n} rows x ${this.heads} heads x ${Lq} x ${Lk} (${bytes} bytes) exceed the binding limit ${limit}; run fewer images at once`);
    }
    const rowsOf = (t: Tensor) => (n === B ? t : slice(t, 0, r0, r1));
    // In f32 whatever the model's dtype: these probabilities are summed over steps (DAAM).
    const split = (t: Tensor, L: number) => permute(cast(rowsOf(t), 'f32').reshape([n, L, this.heads, this.dimHead]), [0, 2, 1, 3]);
    return softmax(matmul(split(q, Lq), split(k, Lk), { transB: true, alpha: this.scale }));
  }

  /** softmax(q k^T / sqrt(dimHead)) v per head: q [B, Lq, inner], k, v [B, Lk, inner]. */
  private attend(q: Tensor, k: Tensor, v: Tensor, opts: AttentionRunOptions): Tensor {
    const a = { heads: this.heads, scale: this.scale };
    if (opts.headProbs) opts.headProbs.receive(this.probsPerHead(q, k, opts.headProbs.rows));
    if (opts.onProbs) {
      const r = attentionWithProbs(q, k, v, a);
      opts.onProbs(cast(r.probsMean, 'f32'));
      return r.out;
    }
    const fits = this.dimHead <= FUSED_MAX_HEAD_DIM && this.dimHead % 4 === 0;
    // Several heads too wide for the kernel are left to nn/attention, which names the limit.
    if ((fits && !opts.unfusedAttention) || this.heads > 1) return attention(q, k, v, a).out;
    // Materialised scores and their softmax run in f32: an f16 score is off by up to 2^-11
    // of its size, which exp turns into that relative error of the probability (the fused
    // kernel keeps its scores in f32 registers).
    if (q.dtype === 'f16') {
      return scope(() => cast(this.attend(cast(q, 'f32'), cast(k, 'f32'), cast(v, 'f32'), { unfusedAttention: true, maxBindingBytes: opts.maxBindingBytes }), 'f16'));
    }
    // One head too wide for the fused kernel (the SD VAE: 512): scores for a block of
    // query rows at a time, so that the [B, rows, Lk] score block stays under the limit.
    const [B, Lq, D] = q.shape;
    const Lk = k.shape[1];
    const limit = opts.maxBindingBytes ?? q.rt.limits.maxStorageBufferBindingSize;
    const rows = Math.min(Lq, Math.floor(limit / (B * Lk * 4)));
    if (rows < 1) throw new LimitError(`Attention: one row of scores over ${Lk} tokens for batch ${B} exceeds the binding limit ${limit}; run fewer samples at once`);
    const block = (qb: Tensor) => matmul(softmax(matmul(qb, k, { transB: true, alpha: this.scale })), v);
    if (rows === Lq) return block(q);
    const out = Tensor.empty(q.rt, [B, Lq, D], q.dtype, 'attention_unfused');
    for (let r0 = 0; r0 < Lq; r0 += rows) scope(() => copyInto(out, block(slice(q, 1, r0, Math.min(Lq, r0 + rows))), 1, r0));
    return out;
  }
}
