// The SD 1.x UNet blocks (diffusers unet_2d_blocks.py at v0.25.1), built from the
// shared ResnetBlock2D, Downsample2D and Upsample2D (layers/resnet.ts). Down blocks return their hidden states plus the skip tensors ("res samples")
// that the mirrored up block concatenates back; taps follow LDM's numbering: each
// resnet(+attention) pair and each downsampler is one input block, each up-block layer
// one output block, the last one of a block including its upsampler.
import { InputError } from '../../gpu/errors.js';
import { concat } from '../../nn/layout.js';
import { Module } from '../../nn/module.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { moduleScope } from '../layers/module_scope.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from '../layers/resnet.js';
import { Transformer2DModel } from './attention.js';
import type { ForwardContext } from './context.js';

export interface BlockSpec {
  inChannels: number;
  outChannels: number;
  tembChannels: number;
  layers: number;
  groups: number;
  eps: number;
}

export interface AttentionSpec {
  heads: number;
  transformerLayers: number;
  crossDim: number;
  useLinearProjection: boolean;
}

const resnetConfig = (s: BlockSpec) => ({ tembChannels: s.tembChannels, groups: s.groups, eps: s.eps });

function transformers(s: BlockSpec, a: AttentionSpec, count: number): Transformer2DModel[] {
  const dimHead = Math.floor(s.outChannels / a.heads);
  return Array.from({ length: count }, () => new Transformer2DModel(a.heads, dimHead, s.outChannels, a.transformerLayers, a.crossDim, s.groups, a.useLinearProjection));
}

export interface DownOutput {
  hiddenStates: Tensor;
  /** One per resnet, plus the downsampler's output. */
  resSamples: Tensor[];
}

/** DownBlock2D, and CrossAttnDownBlock2D when built with attention. */
abstract class DownBlockBase extends Module {
  abstract resnets: ResnetBlock2D[];
  abstract attentions?: Transformer2DModel[];
  abstract downsamplers?: [Downsample2D];

  forward(ctx: ForwardContext, x: Tensor, path: string): DownOutput {
    return moduleScope(this, x.rt, () => this.run(ctx, x, path));
  }

  private run(ctx: ForwardContext, x: Tensor, path: string): DownOutput {
    const resSamples: Tensor[] = [];
    let h = x;
    this.resnets.forEach((resnet, i) => {
      h = scope(() => {
        const r = resnet.forward(h, ctx.tembAct);
        return this.attentions ? this.attentions[i].forward(ctx, r, `${path}.attentions.${i}`) : r;
      });
      ctx.tapInput(h);
      resSamples.push(h);
    });
    if (this.downsamplers) {
      h = this.downsamplers[0].forward(h);
      ctx.tapInput(h);
      resSamples.push(h);
    }
    return { hiddenStates: h, resSamples };
  }
}

export class DownBlock2D extends DownBlockBase {
  resnets: ResnetBlock2D[];
  attentions?: Transformer2DModel[];
  downsamplers?: [Downsample2D];
  constructor(s: BlockSpec, addDownsample: boolean, downsamplePadding: number) {
    super();
    this.resnets = Array.from({ length: s.layers }, (_, i) => new ResnetBlock2D(i === 0 ? s.inChannels : s.outChannels, s.outChannels, resnetConfig(s)));
    if (addDownsample) this.downsamplers = [new Downsample2D(s.outChannels, downsamplePadding)];
  }
}

export class CrossAttnDownBlock2D extends DownBlockBase {
  resnets: ResnetBlock2D[];
  attentions: Transformer2DModel[];
  downsamplers?: [Downsample2D];
  constructor(s: BlockSpec, a: AttentionSpec, addDownsample: boolean, downsamplePadding: number) {
    super();
    this.resnets = Array.from({ length: s.layers }, (_, i) => new ResnetBlock2D(i === 0 ? s.inChannels : s.outChannels, s.outChannels, resnetConfig(s)));
    this.attentions = transformers(s, a, s.layers);
    if (addDownsample) this.downsamplers = [new Downsample2D(s.outChannels, downsamplePadding)];
  }
}

/** resnets[0], then (attention i, resnets[i + 1]) pairs; resnets use mid_block_scale_factor. */
export class UNetMidBlock2DCrossAttn extends Module {
  resnets: ResnetBlock2D[];
  attentions: Transformer2DModel[];
  constructor(s: BlockSpec, a: AttentionSpec, outputScaleFactor: number) {
    super();
    const ch = s.inChannels;
    this.resnets = Array.from({ length: s.layers + 1 }, () => new ResnetBlock2D(ch, ch, { ...resnetConfig(s), outputScaleFactor }));
    this.attentions = transformers({ ...s, outChannels: ch }, a, s.layers);
  }
  forward(ctx: ForwardContext, x: Tensor, path: string): Tensor {
    return moduleScope(this, x.rt, () => scope(() => {
      let h = this.resnets[0].forward(x, ctx.tembAct);
      this.attentions.forEach((attn, i) => {
        h = attn.forward(ctx, h, `${path}.attentions.${i}`);
        h = this.resnets[i + 1].forward(h, ctx.tembAct);
      });
      return h;
    }));
  }
}

export interface UpSpec extends BlockSpec {
  /** Channels coming from the block below (the previous up block or the mid block). */
  prevOutputChannels: number;
}

/** Resnet i sees cat([h, skip]) with skip channels = in_channels for the last layer and
 *  out_channels otherwise (the skips come back in reverse order of the down path). */
function upResnets(s: UpSpec): ResnetBlock2D[] {
  return Array.from({ length: s.layers }, (_, i) => {
    const skip = i === s.layers - 1 ? s.inChannels : s.outChannels;
    const resIn = i === 0 ? s.prevOutputChannels : s.outChannels;
    return new ResnetBlock2D(resIn + skip, s.outChannels, resnetConfig(s));
  });
}

/** UpBlock2D, and CrossAttnUpBlock2D when built with attention. */
abstract class UpBlockBase extends Module {
  abstract resnets: ResnetBlock2D[];
  abstract attentions?: Transformer2DModel[];
  abstract upsamplers?: [Upsample2D];

  /** Consumes x and `skips` (this block's res samples in down-path order, used last
   *  first): each is freed once concatenated, unless it is a requested tap. */
  /** `upsampleSize`: spatial size of the next block's skips (odd sizes crop the 2x upsample). */
  forward(ctx: ForwardContext, x: Tensor, skips: Tensor[], path: string, upsampleSize?: readonly [number, number]): Tensor {
    return moduleScope(this, x.rt, () => this.run(ctx, x, skips, path, upsampleSize));
  }

  private run(ctx: ForwardContext, x: Tensor, skips: Tensor[], path: string, upsampleSize?: readonly [number, number]): Tensor {
    if (skips.length !== this.resnets.length) throw new InputError(`${path}: expected ${this.resnets.length} skip tensors, got ${skips.length}`);
    let h = x;
    this.resnets.forEach((resnet, i) => {
      const skip = skips[skips.length - 1 - i];
      if (skip.shape[2] !== h.shape[2] || skip.shape[3] !== h.shape[3]) {
        throw new InputError(`${path}: skip [${skip.shape}] and hidden states [${h.shape}] differ in size`);
      }
      const prev = h;
      h = scope(() => {
        const cat = concat([prev, skip], 1);
        ctx.release(skip);
        ctx.release(prev);
        let y = resnet.forward(cat, ctx.tembAct);
        if (this.attentions) y = this.attentions[i].forward(ctx, y, `${path}.attentions.${i}`);
        if (i === this.resnets.length - 1 && this.upsamplers) y = this.upsamplers[0].forward(y, upsampleSize);
        return y;
      });
      ctx.tapOutput(h);
    });
    return h;
  }
}

export class UpBlock2D extends UpBlockBase {
  resnets: ResnetBlock2D[];
  attentions?: Transformer2DModel[];
  upsamplers?: [Upsample2D];
  constructor(s: UpSpec, addUpsample: boolean) {
    super();
    this.resnets = upResnets(s);
    if (addUpsample) this.upsamplers = [new Upsample2D(s.outChannels)];
  }
}

export class CrossAttnUpBlock2D extends UpBlockBase {
  resnets: ResnetBlock2D[];
  attentions: Transformer2DModel[];
  upsamplers?: [Upsample2D];
  constructor(s: UpSpec, a: AttentionSpec, addUpsample: boolean) {
    super();
    this.resnets = upResnets(s);
    this.attentions = transformers(s, a, s.layers);
    if (addUpsample) this.upsamplers = [new Upsample2D(s.outChannels)];
  }
}
