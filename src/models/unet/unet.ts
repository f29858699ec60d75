// UNet2DConditionModel (diffusers unet_2d_condition.py v0.25.1, SD 1.x features only):
// time projection + TimestepEmbedding, conv_in, down blocks (collecting skips), the
// cross-attention mid block, up blocks (consuming skips), GroupNorm + SiLU, conv_out.
// Taps expose intermediate outputs by the diffusers hook names and by the LDM block
// names the grounding module reads (/work/shared/golden/grounding/README.md section 1).
import { InputError, ShapeError } from '../../gpu/errors.js';
import { withScope } from '../../gpu/profiler.js';
import type { Runtime } from '../../gpu/runtime.js';
import { cast } from '../../nn/cast.js';
import { silu, unary } from '../../nn/elementwise.js';
import { Module } from '../../nn/module.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Conv2d } from '../layers/conv.js';
import { nameModules } from '../layers/module_scope.js';
import { GroupNorm } from '../layers/norms.js';
import { paramDtype } from '../precision.js';
import { CrossAttnDownBlock2D, CrossAttnUpBlock2D, DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D, type AttentionSpec } from './blocks.js';
import { resolveUNetConfig, type ResolvedUNetConfig, type UNet2DConditionConfig } from './config.js';
import { ForwardContext, type CrossAttentionSink } from './context.js';
import { timeProjection, TimestepEmbedding } from './embeddings.js';

export type TapGroup = 'low' | 'mid' | 'high' | 'highest';

/** The 25 SD 1.x block outputs the grounding module concatenates, by resolution group
 *  (8, 16, 32, 64 at 512x512), each in the official code's append order. */
export const GROUNDING_TAPS: Readonly<Record<TapGroup, readonly string[]>> = {
  low: ['input_blocks.9', 'input_blocks.10', 'input_blocks.11', 'middle_block', 'output_blocks.0', 'output_blocks.1'],
  mid: ['input_blocks.6', 'input_blocks.7', 'input_blocks.8', 'output_blocks.2', 'output_blocks.3', 'output_blocks.4'],
  high: ['input_blocks.3', 'input_blocks.4', 'input_blocks.5', 'output_blocks.5', 'output_blocks.6', 'output_blocks.7'],
  highest: ['input_blocks.0', 'input_blocks.1', 'input_blocks.2', 'output_blocks.8', 'output_blocks.9', 'output_blocks.10', 'output_blocks.11'],
};

export interface UNetForwardOptions {
  /** Outputs to return (see tapNames()); each is one the forward computes anyway. */
  taps?: string[];
  /** Return every attn2's head-averaged probabilities [B, HW, L], keyed by module path. */
  crossAttentionProbs?: boolean;
  /** Hands per-head probabilities of the attn2 layers it wants to it (DAAM). */
  crossAttentionSink?: CrossAttentionSink;
}

export interface UNetOutput {
  /** [B, out_channels, H, W], f32 whatever the weights' dtype. */
  sample: Tensor;
  /** In the weights' dtype (f16 taps halve the grounding features' memory). */
  taps: Map<string, Tensor>;
  /** f32. */
  crossAttention?: Map<string, Tensor>;
}

type DownBlock = DownBlock2D | CrossAttnDownBlock2D;
type UpBlock = UpBlock2D | CrossAttnUpBlock2D;

export class UNet2DConditionModel extends Module {
  conv_in: Conv2d;
  time_embedding: TimestepEmbedding;
  down_blocks: DownBlock[];
  mid_block: UNetMidBlock2DCrossAttn;
  up_blocks: UpBlock[];
  conv_norm_out: GroupNorm;
  conv_out: Conv2d;
  readonly resolved: ResolvedUNetConfig;

  constructor(readonly config: UNet2DConditionConfig) {
    super();
    const c = resolveUNetConfig(config);
    this.resolved = c;
    const n = c.blockOut.length;
    const temb = c.timeEmbedDim;
    const common = { tembChannels: temb, groups: c.groups, eps: c.eps };
    const attn = (i: number): AttentionSpec => ({ heads: c.heads[i], transformerLayers: c.transformerLayers[i], crossDim: c.crossDim[i], useLinearProjection: c.useLinearProjection });

    this.conv_in = new Conv2d(c.inChannels, c.blockOut[0], c.convInKernel, { padding: (c.convInKernel - 1) / 2 });
    this.time_embedding = new TimestepEmbedding(c.timeProjDim, temb);
    this.down_blocks = c.downTypes.map((type, i) => {
      const s = { ...common, inChannels: c.blockOut[Math.max(i - 1, 0)], outChannels: c.blockOut[i], layers: c.layers[i] };
      const addDown = i < n - 1;
      return type === 'CrossAttnDownBlock2D' ? new CrossAttnDownBlock2D(s, attn(i), addDown, c.downsamplePadding) : new DownBlock2D(s, addDown, c.downsamplePadding);
    });
    const last = c.blockOut[n - 1];
    this.mid_block = new UNetMidBlock2DCrossAttn({ ...common, inChannels: last, outChannels: last, layers: 1 }, attn(n - 1), c.midScale);
    // Up block i mirrors down block n-1-i: reversed channel, layer and attention lists.
    const rev = n - 1;
    this.up_blocks = c.upTypes.map((type, i) => {
      const s = {
        ...common,
        inChannels: c.blockOut[Math.max(rev - i - 1, 0)],
        outChannels: c.blockOut[rev - i],
        prevOutputChannels: c.blockOut[Math.min(rev - i + 1, rev)],
        layers: c.layers[rev - i] + 1,
      };
      const addUp = i < n - 1;
      return type === 'CrossAttnUpBlock2D' ? new CrossAttnUpBlock2D(s, attn(rev - i), addUp) : new UpBlock2D(s, addUp);
    });
    this.conv_norm_out = new GroupNorm(c.groups, c.blockOut[0], c.eps);
    this.conv_out = new Conv2d(c.blockOut[0], c.outChannels, c.convOutKernel, { padding: (c.convOutKernel - 1) / 2 });
    nameModules(this);
  }

  /** Every tap name this configuration produces. */
  tapNames(): string[] {
    const n = this.down_blocks.length;
    const inputs = 1 + this.down_blocks.reduce((a, b) => a + b.resnets.length + (b.downsamplers ? 1 : 0), 0);
    const outputs = this.up_blocks.reduce((a, b) => a + b.resnets.length, 0);
    const idx = (k: number) => Array.from({ length: k }, (_, i) => i);
    return [
      'time_embedding',
      ...idx(n).map((i) => `down_blocks.${i}`),
      'mid_block',
      ...idx(n).map((i) => `up_blocks.${i}`),
      ...idx(inputs).map((i) => `input_blocks.${i}`),
      'middle_block',
      ...idx(outputs).map((i) => `output_blocks.${i}`),
    ];
  }

  /** sample [B, in_channels, H, W], timesteps one per row (or one for all), text states
   *  [B, L, cross_attention_dim] -> the predicted noise, plus the requested taps. Inputs
   *  may be f32 or f16; the model runs in its weights' dtype (models/precision.ts). */
  forward(rt: Runtime, sample: Tensor, timesteps: readonly number[], encoderHiddenStates: Tensor, opts: UNetForwardOptions = {}): UNetOutput {
    const c = this.resolved;
    this.checkInputs(sample, timesteps, encoderHiddenStates);
    const known = new Set(this.tapNames());
    const unknown = (opts.taps ?? []).filter((t) => !known.has(t));
    if (unknown.length) throw new InputError(`UNet2DConditionModel: unknown taps ${unknown.join(', ')} (known: ${[...known].join(', ')})`);
    const B = sample.shape[0];
    const ts = timesteps.length === 1 ? Array<number>(B).fill(timesteps[0]) : timesteps;

    return scope(() => {
      // The blocks run in the weights' dtype; inputs convert to it, the output back to f32.
      const dtype = paramDtype(this.conv_in.weight);
      const x = cast(sample, dtype);
      // time_proj: diffusers' Timesteps module (no weights), named as the profiler sees it;
      // computed in f32 and rounded once (values in [-1, 1]), as diffusers casts t_emb.
      const emb = this.time_embedding.forward(cast(withScope(rt, 'time_proj', () => timeProjection(rt, ts, c.timeProjDim, c.flipSinToCos, c.freqShift)), dtype));
      const ctx = new ForwardContext(silu(emb), cast(encoderHiddenStates, dtype), new Set(opts.taps ?? []), opts.crossAttentionProbs ?? false, opts.crossAttentionSink);
      ctx.tap('time_embedding', emb);

      let h = this.conv_in.forward(c.centerInput ? unary(x, 'none', 2, -1) : x);
      ctx.tapInput(h);
      const skips: Tensor[] = [h];
      this.down_blocks.forEach((block, i) => {
        const out = block.forward(ctx, h, `down_blocks.${i}`);
        skips.push(...out.resSamples);
        h = out.hiddenStates;
        ctx.tap(`down_blocks.${i}`, h);
      });

      h = this.mid_block.forward(ctx, h, 'mid_block');
      ctx.tap('mid_block', h);
      ctx.tap('middle_block', h);

      this.up_blocks.forEach((block, i) => {
        const mine = skips.splice(skips.length - block.resnets.length);
        const next = skips[skips.length - 1];
        const size: [number, number] | undefined = next ? [next.shape[2], next.shape[3]] : undefined;
        h = block.forward(ctx, h, mine, `up_blocks.${i}`, size);
        ctx.tap(`up_blocks.${i}`, h);
      });

      const out = cast(this.conv_out.forward(this.conv_norm_out.forward(h, 'silu')), 'f32');
      return { sample: out, taps: ctx.taps, crossAttention: ctx.crossAttention };
    });
  }

  private checkInputs(sample: Tensor, timesteps: readonly number[], ehs: Tensor): void {
    const c = this.resolved;
    for (const [name, t] of [['sample', sample], ['encoder_hidden_states', ehs]] as const) {
      if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new ShapeError(`UNet2DConditionModel: ${name} ${t.toString()} must be a float tensor (f32 or f16)`);
    }
    const [B, C, H, W] = sample.shape;
    if (sample.shape.length !== 4 || C !== c.inChannels) {
      throw new ShapeError(`UNet2DConditionModel: sample ${sample.toString()} must be [B, ${c.inChannels}, H, W]`);
    }
    if (timesteps.length !== 1 && timesteps.length !== B) {
      throw new InputError(`UNet2DConditionModel: ${timesteps.length} timesteps for a batch of ${B}; pass one per row or a single one`);
    }
    if (timesteps.some((t) => !Number.isFinite(t))) throw new InputError(`UNet2DConditionModel: timesteps ${timesteps.join(', ')} must be finite`);
    const cross = c.crossDim[0];
    if (ehs.shape.length !== 3 || ehs.shape[0] !== B || c.crossDim.some((d) => d !== ehs.shape[2])) {
      throw new ShapeError(`UNet2DConditionModel: encoder_hidden_states ${ehs.toString()} must be [${B}, L, ${cross}]`);
    }
  }
}
