// Forward pass of the grounding module, as the official Segmodule computes it (see
// shared/golden/grounding/README.md), over a batch of images that may each have their own
// class count. Every image runs through the whole module on its own, in order: batch
// statistics in train mode are per image (the official training batch is 1, and its
// token flattening only works at batch 1), the BN running statistics and the spectral
// norm's u0/sv0 advance once per image, and each image's queries attend only to its own
// patch tokens. So a batch gives exactly the logits, losses and gradients of running its
// images one at a time.
//
// Two exact rewrites keep large tensors small (both are linear maps, so only float
// rounding changes):
// - a 1x1 convolution of a channel concatenation is the sum of per-tensor products with
//   the weight's column blocks (the SD v1 high group would be a 136 MB concat, past the
//   128 MiB binding limit);
// - einsum(interp(F, out), emb) = interp(einsum(F, emb), out): bilinear interpolation
//   acts per channel, so the n class maps are interpolated instead of F's 240 channels
//   (251 MB at 512x512).
import { InputError, ShapeError } from '../../gpu/errors.js';
import { withScope } from '../../gpu/profiler.js';
import { attention } from '../../nn/attention.js';
import { batchNorm } from '../../nn/batch_norm.js';
import { cast } from '../../nn/cast.js';
import { conv2d } from '../../nn/conv2d.js';
import { relu } from '../../nn/elementwise.js';
import { layerNorm } from '../../nn/layer_norm.js';
import { concat, slice } from '../../nn/layout.js';
import { linear, matmul } from '../../nn/matmul.js';
import { resizeBilinear } from '../../nn/resize.js';
import { spectralNorm, type SpectralNormResult } from '../../nn/spectral_norm.js';
import { patchUnfold } from '../../nn/unfold.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Conv2d } from '../layers/conv.js';
import { GROUPS, type Group } from './config.js';
import type { DecoderLayer, SegBlock, Segmodule } from './segmodule.js';

export interface GroundingSample {
  features: Record<Group, Tensor[]>;
  /** [n, context_dim] (or [1, n, context_dim]), one row per class. */
  textEmbedding: Tensor;
}

export interface ForwardOptions {
  training: boolean;
  /** Mask size (default config.out_size). */
  outSize?: number;
  /** Keep what groundingBackward needs (default false: freed after the forward). */
  keepForBackward?: boolean;
  /** Also return every sub-module output, sigma and effective weight (parity checks). */
  intermediates?: boolean;
}

/** What one SegBlock saves for its backward. */
export interface BlockTape {
  x: Tensor; r: Tensor; c1: Tensor; h: Tensor;
  bn1: { mean: Tensor; rstd: Tensor }; bn2: { mean: Tensor; rstd: Tensor };
  sn1: SpectralNormResult; sn2: SpectralNormResult;
}

export interface LayerTape {
  x: Tensor; t1: Tensor; ln1: { mean: Tensor; rstd: Tensor }; q1: Tensor; k1: Tensor; v1: Tensor; a1: Tensor; lse1: Tensor;
  x1: Tensor; t2: Tensor; ln2: { mean: Tensor; rstd: Tensor }; q2: Tensor; k2: Tensor; v2: Tensor; a2: Tensor; lse2: Tensor;
  x2: Tensor; t3: Tensor; ln3: { mean: Tensor; rstd: Tensor }; hidden: Tensor;
}

/** Everything the backward of one image needs. */
export interface ImageTape {
  training: boolean;
  features: Record<Group, Tensor[]>;
  text: Tensor;
  mid: BlockTape; high: BlockTape; highest: BlockTape;
  /** F [1, C, S, S] and its patch tokens [L, C p^2]. */
  image: Tensor; patches: Tensor; memory: Tensor;
  layers: LayerTape[];
  /** MLP layer inputs (decoder output, then each ReLU output) and the embeddings [n, C]. */
  mlpInputs: Tensor[]; embedding: Tensor;
  outSize: number;
}

export interface GroundingForward {
  /** Per image [n_b, out, out]. */
  logits: Tensor[];
  /** Per image: sub-module outputs by official name, `sigma.<conv>`, `effective_weight.<conv>.weight`. */
  intermediates?: Map<string, Tensor>[];
  /** Per image, when keepForBackward. */
  tapes?: ImageTape[];
}

/** y [1, O, s, s] = W [O, sum C_i] applied to the channel concat of interp(x_i, s). The
 *  module runs in f32 (batch statistics, the spectral norm's power iteration and the mask
 *  threshold are precision-sensitive, and its weights are small); the features of an f16
 *  UNet are widened one at a time as they are consumed, so they stay f16 in memory. */
export function projectGroup(p: Conv2d, xs: Tensor[], size: number, what: string): Tensor {
  const w2 = p.weight.t.reshape([p.outChannels, p.inChannels]);
  let at = 0;
  let y: Tensor | undefined;
  for (const x of xs) {
    if (x.shape.length !== 4 || x.shape[0] !== 1) throw new ShapeError(`${what}: features must be [1, C, H, W], got [${x.shape}]`);
    const ci = x.shape[1];
    if (at + ci > p.inChannels) throw new ShapeError(`${what}: features have more than the ${p.inChannels} channels the projection takes`);
    const xw = cast(x, w2.dtype === 'f16' ? 'f16' : 'f32');
    const xi = (x.shape[2] === size && x.shape[3] === size ? xw : resizeBilinear(xw, size, size)).reshape([ci, size * size]);
    const wi = xs.length === 1 ? w2 : slice(w2, 1, at, at + ci);
    if (y) matmul(wi, xi, { out: y, accumulate: true });
    else y = matmul(wi, xi);
    at += ci;
  }
  if (at !== p.inChannels || !y) throw new ShapeError(`${what}: features have ${at} channels in total, the projection takes ${p.inChannels}`);
  return y.reshape([1, p.outChannels, size, size]);
}

interface BlockConsts { training: boolean; eps: number; momentum: number; snEps: number; iters: number }

function segBlock(b: SegBlock, x: Tensor, k: BlockConsts): { out: Tensor; tape: BlockTape } {
  const sn = (c: SegBlock['conv1']) => spectralNorm(c.weight.t, c.u0.t, { eps: k.snEps, iterations: k.iters, update: k.training ? { sv0: c.sv0.t } : undefined });
  const bn = (t: Tensor, m: Tensor, v: Tensor) => batchNorm(t, { training: k.training, runningMean: m, runningVar: v, eps: k.eps, momentum: k.momentum });
  const bn1 = bn(x, b.stored_mean1.t, b.stored_var1.t);
  const r = relu(bn1.y);
  const sn1 = sn(b.conv1);
  const c1 = conv2d(r, sn1.weight, b.conv1.bias.t, { padding: 1 });
  const bn2 = bn(c1, b.stored_mean2.t, b.stored_var2.t);
  const h = relu(bn2.y);
  const sn2 = sn(b.conv2);
  // The shortcut is relu(bn1(x)): the official ReLU is in place on bn1's output.
  const out = conv2d(h, sn2.weight, b.conv2.bias.t, { padding: 1, residual: r });
  return { out, tape: { x, r, c1, h, bn1: { mean: bn1.mean, rstd: bn1.rstd }, bn2: { mean: bn2.mean, rstd: bn2.rstd }, sn1, sn2 } };
}

function decoderLayer(l: DecoderLayer, x: Tensor, memory: Tensor, heads: number): { out: Tensor; tape: LayerTape } {
  const E = x.shape[1];
  const n = x.shape[0];
  const L = memory.shape[0];
  const ln = (t: Tensor, norm: DecoderLayer['norm1']) => layerNorm(t, norm.weight.t, norm.bias.t, norm.eps);
  const as3 = (t: Tensor, rows: number) => t.reshape([1, rows, E]);

  const n1 = ln(x, l.norm1);
  const qkv = linear(n1.y, l.self_attn.in_proj_weight.t);
  const q1 = as3(slice(qkv, 1, 0, E), n);
  const k1 = as3(slice(qkv, 1, E, 2 * E), n);
  const v1 = as3(slice(qkv, 1, 2 * E, 3 * E), n);
  const at1 = attention(q1, k1, v1, { heads });
  const x1 = matmul(at1.out.reshape([n, E]), l.self_attn.out_proj.weight.t, { transB: true, residual: x });

  const n2 = ln(x1, l.norm2);
  const w2 = l.multihead_attn.in_proj_weight.t;
  const q2 = as3(linear(n2.y, slice(w2, 0, 0, E)), n);
  const kv = linear(memory, slice(w2, 0, E, 3 * E));
  const k2 = as3(slice(kv, 1, 0, E), L);
  const v2 = as3(slice(kv, 1, E, 2 * E), L);
  const at2 = attention(q2, k2, v2, { heads });
  const x2 = matmul(at2.out.reshape([n, E]), l.multihead_attn.out_proj.weight.t, { transB: true, residual: x1 });

  const n3 = ln(x2, l.norm3);
  const hidden = linear(n3.y, l.linear1.weight.t, l.linear1.bias!.t, 'relu');
  const out = matmul(hidden, l.linear2.weight.t, { transB: true, bias: l.linear2.bias!.t, residual: x2 });
  return {
    out,
    tape: {
      x, t1: n1.y, ln1: { mean: n1.mean, rstd: n1.rstd }, q1, k1, v1, a1: at1.out, lse1: at1.lse,
      x1, t2: n2.y, ln2: { mean: n2.mean, rstd: n2.rstd }, q2, k2, v2, a2: at2.out, lse2: at2.lse,
      x2, t3: n3.y, ln3: { mean: n3.mean, rstd: n3.rstd }, hidden,
    },
  };
}

const SN_CONVS = ['conv1', 'conv2'] as const;

/** One image through the whole module; returns its logits [n, out, out] and tape. */
function forwardImage(m: Segmodule, s: GroundingSample, opts: ForwardOptions, inter: Map<string, Tensor> | null): { logits: Tensor; tape: ImageTape } {
  const c = m.config;
  const k: BlockConsts = { training: opts.training, eps: c.bn_eps, momentum: c.bn_momentum, snEps: c.sn_eps, iters: c.sn_num_itrs };
  const outSize = opts.outSize ?? c.out_size;
  const put = (name: string, t: Tensor) => inter?.set(name, t);
  // Profiler scopes by official module name (free unless profiling; see src/bench/grounding.ts).
  const rt = s.textEmbedding.rt;
  const at = <T>(name: string, fn: () => T): T => withScope(rt, name, fn);
  for (const g of GROUPS) {
    const xs = s.features[g];
    if (!xs || xs.length !== c.feature_channels[g].length) throw new InputError(`groundingForward: ${c.feature_channels[g].length} '${g}' feature tensors expected, got ${xs?.length ?? 0}`);
  }
  const block = (name: 'mid_feature_mix_conv' | 'high_feature_mix_conv' | 'highest_feature_mix_conv', x: Tensor) => {
    const r = segBlock(m[name], x, k);
    put(name, r.out);
    for (const cv of SN_CONVS) {
      put(`sigma.${name}.${cv}`, cv === 'conv1' ? r.tape.sn1.sigma : r.tape.sn2.sigma);
      put(`effective_weight.${name}.${cv}.weight`, cv === 'conv1' ? r.tape.sn1.weight : r.tape.sn2.weight);
    }
    return r;
  };
  const low = at('low_feature_conv', () => projectGroup(m.low_feature_conv[0], s.features.low, c.low_feature_size, 'low_feature_conv'));
  put('low_feature_conv', low);
  const mid = at('mid_feature_conv', () => projectGroup(m.mid_feature_conv[0], s.features.mid, c.mid_feature_size, 'mid_feature_conv'));
  put('mid_feature_conv', mid);
  const midMix = at('mid_feature_mix_conv', () => block('mid_feature_mix_conv', concat([resizeBilinear(low, c.mid_feature_size, c.mid_feature_size), mid], 1)));
  const high = at('high_feature_conv', () => projectGroup(m.high_feature_conv[0], s.features.high, c.high_feature_size, 'high_feature_conv'));
  put('high_feature_conv', high);
  const highMix = at('high_feature_mix_conv', () => block('high_feature_mix_conv', concat([resizeBilinear(midMix.out, c.high_feature_size, c.high_feature_size), high], 1)));
  const highest = at('highest_feature_conv', () => projectGroup(m.highest_feature_conv[0], s.features.highest, c.high_feature_size, 'highest_feature_conv'));
  put('highest_feature_conv', highest);
  const top = at('highest_feature_mix_conv', () => block('highest_feature_mix_conv', concat([highMix.out, highest], 1)));
  const image = top.out;
  const [, C, S] = image.shape;

  const patches = at('to_k', () => patchUnfold(image, c.patch_size));
  const tokens = patches.reshape([patches.shape[1], patches.shape[2]]);
  const memory = at('to_k', () => linear(tokens, m.to_k.weight.t));
  put('to_k', memory);
  const text = s.textEmbedding.reshape([-1, c.context_dim]);
  const n = text.shape[0];
  let x = at('to_q', () => linear(text, m.to_q.weight.t));
  put('to_q', x);
  const layers: LayerTape[] = [];
  m.transfromer_decoder.layers.forEach((l, i) => {
    const r = at(`transfromer_decoder.layers.${i}`, () => decoderLayer(l, x, memory, c.num_heads));
    layers.push(r.tape);
    x = r.out;
    put(`transfromer_decoder.layers.${i}`, x);
  });
  const mlpInputs: Tensor[] = [];
  let e = x;
  m.mlp.layers.forEach((l, i) => {
    mlpInputs.push(e);
    e = at(`mlp.layers.${i}`, () => linear(e, l.weight.t, l.bias!.t, i < m.mlp.layers.length - 1 ? 'relu' : 'none'));
  });
  put('mlp', e.reshape([1, n, C]));
  const logits = at('output', () => {
    const maps = matmul(e, image.reshape([C, S * S])).reshape([1, n, S, S]);
    return resizeBilinear(maps, outSize, outSize).reshape([n, outSize, outSize]);
  });
  return {
    logits,
    tape: {
      training: opts.training, features: s.features, text, mid: midMix.tape, high: highMix.tape, highest: top.tape,
      image, patches: tokens, memory, layers, mlpInputs, embedding: e, outSize,
    },
  };
}

/** Runs every image of the batch in order (see the file header); logits per image. */
export function groundingForward(m: Segmodule, batch: GroundingSample[], opts: ForwardOptions): GroundingForward {
  if (batch.length === 0) throw new InputError('groundingForward: the batch is empty');
  const logits: Tensor[] = [];
  const tapes: ImageTape[] = [];
  const inters: Map<string, Tensor>[] = [];
  for (const s of batch) {
    const r = scope(() => {
      const inter = opts.intermediates ? new Map<string, Tensor>() : null;
      const out = forwardImage(m, s, opts, inter);
      return { logits: out.logits, tape: opts.keepForBackward ? out.tape : null, inter };
    });
    logits.push(r.logits);
    if (r.tape) tapes.push(r.tape);
    if (r.inter) inters.push(r.inter);
  }
  const out: GroundingForward = { logits };
  if (opts.intermediates) out.intermediates = inters;
  if (opts.keepForBackward) out.tapes = tapes;
  return out;
}
