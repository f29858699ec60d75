// State shared by one UNet forward pass: the conditioning every block reads (SiLU of the
// time embedding, the text states), the taps that were asked for, and the LDM block
// counters that name them. Requested taps are kept out of every scope (the caller owns
// them); nothing is copied or kept for taps that were not requested.
import type { Tensor } from '../../tensor/tensor.js';
import { keep } from '../../tensor/scope.js';

/** Receives per-head cross-attention probabilities of chosen attn2 layers (DAAM). */
export interface CrossAttentionSink {
  /** Whether to capture the attn2 at this module path, e.g.
   *  `up_blocks.1.attentions.0.transformer_blocks.0.attn2`. */
  wants(path: string): boolean;
  /** Batch rows [start, end) to compute (default all; DAAM takes the conditional half). */
  readonly rows?: readonly [number, number];
  /** probs [rows, heads, h*w, Lk] = softmax(q k^T / sqrt(head_dim)) per head, valid during
   *  the call only (inside the forward's scope): accumulate it or keep() it. */
  receive(path: string, probs: Tensor): void;
}

export class ForwardContext {
  readonly taps = new Map<string, Tensor>();
  /** Head-averaged cross-attention probabilities [B, Lq, Lk] per attn2 path (DAAM). */
  readonly crossAttention: Map<string, Tensor> | undefined;
  /** Next LDM input_blocks / output_blocks index. */
  inputBlock = 0;
  outputBlock = 0;
  private readonly kept = new Set<Tensor>();

  constructor(
    /** silu(time_embedding(...)) [B, temb]: every ResnetBlock2D applies time_emb_proj to it. */
    readonly tembAct: Tensor,
    /** [B, L, cross_attention_dim]. */
    readonly encoderHiddenStates: Tensor,
    private readonly requested: ReadonlySet<string>,
    crossAttentionProbs: boolean,
    /** Per-head cross-attention probabilities go here (UNetForwardOptions.crossAttentionSink). */
    readonly sink?: CrossAttentionSink,
  ) {
    this.crossAttention = crossAttentionProbs ? new Map() : undefined;
  }

  /** Records `t` under `name` when that tap was requested. */
  tap(name: string, t: Tensor): void {
    if (!this.requested.has(name)) return;
    this.kept.add(keep(t));
    this.taps.set(name, t);
  }

  tapInput(t: Tensor): void {
    this.tap(`input_blocks.${this.inputBlock++}`, t);
  }

  tapOutput(t: Tensor): void {
    this.tap(`output_blocks.${this.outputBlock++}`, t);
  }

  /** Frees an intermediate early (skip connections once concatenated) unless it is a tap. */
  release(t: Tensor): void {
    if (!this.kept.has(t)) t.dispose();
  }

  recordProbs(path: string, probsMean: Tensor): void {
    this.crossAttention?.set(path, keep(probsMean));
  }
}
