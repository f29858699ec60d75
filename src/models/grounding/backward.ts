// Backward pass of the grounding module from the tapes groundingForward kept: gradients
// of every parameter by official state-dict name (summed over the batch's images) and,
// on request, of the input features and text embeddings. Train-mode batch norm is
// differentiated through its per-image batch statistics; eval mode through the stored ones.
import { InputError } from '../../gpu/errors.js';
import { withScope } from '../../gpu/profiler.js';
import { attentionBackward } from '../../nn/attention.js';
import { batchNormBackward } from '../../nn/batch_norm.js';
import { conv2dBackward } from '../../nn/conv2d.js';
import { add, unaryBackward } from '../../nn/elementwise.js';
import { layerNormBackward } from '../../nn/layer_norm.js';
import { concat, copyInto, slice } from '../../nn/layout.js';
import { linearBackward, matmul } from '../../nn/matmul.js';
import { resizeBilinear, resizeBilinearBackward } from '../../nn/resize.js';
import { spectralNormBackward } from '../../nn/spectral_norm.js';
import { patchUnfoldBackward } from '../../nn/unfold.js';
import { keep, scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Conv2d } from '../layers/conv.js';
import type { Group } from './config.js';
import type { BlockTape, GroundingForward, ImageTape, LayerTape } from './forward.js';
import type { DecoderLayer, SegBlock, Segmodule } from './segmodule.js';

export interface GroundingGrads {
  /** dL/dparam by state-dict name (buffers have none). */
  params: Map<string, Tensor>;
  /** Per image, with inputGrads: gradients of the feature tensors, same shapes. */
  features?: Record<Group, Tensor[]>[];
  /** Per image, with inputGrads: [n_b, context_dim]. */
  textEmbedding?: Tensor[];
}

type Sink = (name: string, g: Tensor) => void;

/** dW of the 1x1 projection, and with `inputs` the feature gradients. */
function projectBackward(p: Conv2d, name: string, xs: Tensor[], dy: Tensor, sink: Sink, inputs: boolean): Tensor[] {
  const size = dy.shape[2];
  const O = p.outChannels;
  const dy2 = dy.reshape([O, size * size]);
  const w2 = p.weight.t.reshape([O, p.inChannels]);
  const dws: Tensor[] = [];
  const dxs: Tensor[] = [];
  let at = 0;
  for (const x of xs) {
    const ci = x.shape[1];
    const resized = x.shape[2] !== size || x.shape[3] !== size;
    const xi = (resized ? resizeBilinear(x, size, size) : x).reshape([ci, size * size]);
    dws.push(matmul(dy2, xi, { transB: true }));
    if (inputs) {
      const wi = xs.length === 1 ? w2 : slice(w2, 1, at, at + ci);
      const dxi = matmul(wi, dy2, { transA: true }).reshape([1, ci, size, size]);
      dxs.push(keep(resized ? resizeBilinearBackward(dxi, x.shape[2], x.shape[3]) : dxi));
    }
    at += ci;
  }
  sink(`${name}.0.weight`, (dws.length === 1 ? dws[0] : concat(dws, 1)).reshape(p.weight.shape));
  return dxs;
}

function blockBackward(b: SegBlock, name: string, t: BlockTape, dout: Tensor, training: boolean, sink: Sink): Tensor {
  const c2 = conv2dBackward(t.h, t.sn2.weight, dout, { padding: 1, bias: true });
  sink(`${name}.conv2.bias`, c2.dbias!);
  sink(`${name}.conv2.weight`, spectralNormBackward(b.conv2.weight.t, t.sn2, c2.dweight));
  const dc1 = batchNormBackward(t.c1, t.bn2.mean, t.bn2.rstd, unaryBackward(t.h, c2.dx, 'relu'), { training }).dx;
  const c1 = conv2dBackward(t.r, t.sn1.weight, dc1, { padding: 1, bias: true });
  sink(`${name}.conv1.bias`, c1.dbias!);
  sink(`${name}.conv1.weight`, spectralNormBackward(b.conv1.weight.t, t.sn1, c1.dweight));
  // r feeds both conv1 and the shortcut.
  const dr = add(c1.dx, dout);
  return batchNormBackward(t.x, t.bn1.mean, t.bn1.rstd, unaryBackward(t.r, dr, 'relu'), { training }).dx;
}

function layerBackward(l: DecoderLayer, name: string, t: LayerTape, memory: Tensor, dout: Tensor, sink: Sink): { dx: Tensor; dmemory: Tensor } {
  const [n, E] = t.x.shape;
  const L = t.k2.shape[1];
  const heads = l.self_attn.heads;
  const ln = (x: Tensor, norm: DecoderLayer['norm1'], st: { mean: Tensor; rstd: Tensor }, dy: Tensor, nm: string) => {
    const r = layerNormBackward(x, norm.weight.t, st.mean, st.rstd, dy);
    sink(`${name}.${nm}.weight`, r.dweight);
    sink(`${name}.${nm}.bias`, r.dbias);
    return r.dx;
  };
  const flat = (x: Tensor, rows: number) => x.reshape([rows, E]);
  // FFN
  const f2 = linearBackward(t.hidden, l.linear2.weight.t, dout, { bias: true });
  sink(`${name}.linear2.weight`, f2.dweight);
  sink(`${name}.linear2.bias`, f2.dbias!);
  const f1 = linearBackward(t.t3, l.linear1.weight.t, unaryBackward(t.hidden, f2.dx, 'relu'), { bias: true });
  sink(`${name}.linear1.weight`, f1.dweight);
  sink(`${name}.linear1.bias`, f1.dbias!);
  const dx2 = add(dout, ln(t.x2, l.norm3, t.ln3, f1.dx, 'norm3'));
  // cross-attention
  const o2 = linearBackward(flat(t.a2, n), l.multihead_attn.out_proj.weight.t, dx2);
  sink(`${name}.multihead_attn.out_proj.weight`, o2.dweight);
  const a2 = attentionBackward(t.q2, t.k2, t.v2, t.a2, t.lse2, o2.dx.reshape([1, n, E]), { heads });
  const w2 = l.multihead_attn.in_proj_weight.t;
  const qb = linearBackward(t.t2, slice(w2, 0, 0, E), flat(a2.dq, n));
  const kvb = linearBackward(memory, slice(w2, 0, E, 3 * E), concat([flat(a2.dk, L), flat(a2.dv, L)], 1));
  sink(`${name}.multihead_attn.in_proj_weight`, concat([qb.dweight, kvb.dweight], 0));
  const dx1 = add(dx2, ln(t.x1, l.norm2, t.ln2, qb.dx, 'norm2'));
  // self-attention
  const o1 = linearBackward(flat(t.a1, n), l.self_attn.out_proj.weight.t, dx1);
  sink(`${name}.self_attn.out_proj.weight`, o1.dweight);
  const a1 = attentionBackward(t.q1, t.k1, t.v1, t.a1, t.lse1, o1.dx.reshape([1, n, E]), { heads });
  const sb = linearBackward(t.t1, l.self_attn.in_proj_weight.t, concat([flat(a1.dq, n), flat(a1.dk, n), flat(a1.dv, n)], 1));
  sink(`${name}.self_attn.in_proj_weight`, sb.dweight);
  const dx = add(dx1, ln(t.x, l.norm1, t.ln1, sb.dx, 'norm1'));
  return { dx, dmemory: kvb.dx };
}

function imageBackward(m: Segmodule, t: ImageTape, dlogits: Tensor, sink: Sink, inputs: boolean): { features?: Record<Group, Tensor[]>; text?: Tensor } {
  const c = m.config;
  const n = t.embedding.shape[0];
  const [, C, S] = t.image.shape;
  if (dlogits.size !== n * t.outSize * t.outSize) throw new InputError(`groundingBackward: dlogits ${dlogits.toString()} must be [${n}, ${t.outSize}, ${t.outSize}]`);
  // Profiler scopes by official module name, as in the forward (free unless profiling).
  const at = <T>(name: string, fn: () => T): T => withScope(dlogits.rt, name, fn);
  // logits = interp(emb F): back through the interpolation, then the product.
  const { de: de0, dimageMaps } = at('output', () => {
    const dmaps = resizeBilinearBackward(dlogits.reshape([1, n, t.outSize, t.outSize]), S, S).reshape([n, S * S]);
    const image2 = t.image.reshape([C, S * S]);
    return { de: matmul(dmaps, image2, { transB: true }), dimageMaps: matmul(t.embedding, dmaps, { transA: true }) };
  });
  let de = de0;
  for (let i = m.mlp.layers.length - 1; i >= 0; i--) {
    const l = m.mlp.layers[i];
    const x = t.mlpInputs[i];
    de = at(`mlp.layers.${i}`, () => {
      const r = linearBackward(x, l.weight.t, de, { bias: true });
      sink(`mlp.layers.${i}.weight`, r.dweight);
      sink(`mlp.layers.${i}.bias`, r.dbias!);
      return i > 0 ? unaryBackward(x, r.dx, 'relu') : r.dx;
    });
  }
  let dx = de;
  let dmem: Tensor | null = null;
  const layers = m.transfromer_decoder.layers;
  for (let i = layers.length - 1; i >= 0; i--) {
    const name = `transfromer_decoder.layers.${i}`;
    const r = at(name, () => {
      const b = layerBackward(layers[i], name, t.layers[i], t.memory, dx, sink);
      return { dx: b.dx, dmem: dmem ? add(dmem, b.dmemory) : b.dmemory };
    });
    dx = r.dx;
    dmem = r.dmem;
  }
  const q = at('to_q', () => {
    const r = linearBackward(t.text, m.to_q.weight.t, dx);
    sink('to_q.weight', r.dweight);
    return r;
  });
  const dimage = at('to_k', () => {
    const kb = linearBackward(t.patches, m.to_k.weight.t, dmem!);
    sink('to_k.weight', kb.dweight);
    const dpatch = patchUnfoldBackward(kb.dx.reshape([1, ...t.patches.shape]), [1, C, S, S], c.patch_size);
    return add(dpatch, dimageMaps.reshape([1, C, S, S]));
  });

  const p = c.proj_channels;
  // Each mix conv's scope also holds the backward of its input's interpolation and concat, as in the forward.
  const dTop = at('highest_feature_mix_conv', () => blockBackward(m.highest_feature_mix_conv, 'highest_feature_mix_conv', t.highest, dimage, t.training, sink));
  const hiC = C - p.highest;
  const dHighMix = at('highest_feature_mix_conv', () => slice(dTop, 1, 0, hiC));
  const fHighest = at('highest_feature_conv', () => projectBackward(m.highest_feature_conv[0], 'highest_feature_conv', t.features.highest, slice(dTop, 1, hiC, C), sink, inputs));
  const dHigh = at('high_feature_mix_conv', () => blockBackward(m.high_feature_mix_conv, 'high_feature_mix_conv', t.high, dHighMix, t.training, sink));
  const midC = hiC - p.high;
  const fHigh = at('high_feature_conv', () => projectBackward(m.high_feature_conv[0], 'high_feature_conv', t.features.high, slice(dHigh, 1, midC, hiC), sink, inputs));
  const dMidMix = at('high_feature_mix_conv', () => resizeBilinearBackward(slice(dHigh, 1, 0, midC), c.mid_feature_size, c.mid_feature_size));
  const dMid = at('mid_feature_mix_conv', () => blockBackward(m.mid_feature_mix_conv, 'mid_feature_mix_conv', t.mid, dMidMix, t.training, sink));
  const fMid = at('mid_feature_conv', () => projectBackward(m.mid_feature_conv[0], 'mid_feature_conv', t.features.mid, slice(dMid, 1, p.low, midC), sink, inputs));
  const dLow = at('mid_feature_mix_conv', () => resizeBilinearBackward(slice(dMid, 1, 0, p.low), c.low_feature_size, c.low_feature_size));
  const fLow = at('low_feature_conv', () => projectBackward(m.low_feature_conv[0], 'low_feature_conv', t.features.low, dLow, sink, inputs));
  if (!inputs) return {};
  return { features: { low: fLow, mid: fMid, high: fHigh, highest: fHighest }, text: keep(q.dx) };
}

/**
 * Gradients given dlogits per image (same shapes as fwd.logits). Parameter gradients are
 * summed over the images; with `into`, added in place into those tensors (missing names
 * are created), so one map can accumulate over batches. Frees fwd's tapes (and with them
 * the forward's intermediates, which share their tensors); fwd.logits stay.
 */
export function groundingBackward(
  m: Segmodule, fwd: GroundingForward, dlogits: Tensor[], opts: { inputGrads?: boolean; into?: Map<string, Tensor> } = {},
): GroundingGrads {
  const tapes = fwd.tapes;
  if (!tapes) throw new InputError('groundingBackward: the forward was run without keepForBackward');
  if (dlogits.length !== tapes.length) throw new InputError(`groundingBackward: ${dlogits.length} dlogits for ${tapes.length} images`);
  const params = opts.into ?? new Map<string, Tensor>();
  const sink: Sink = (name, g) => {
    const old = params.get(name);
    if (!old) {
      params.set(name, keep(g));
      return;
    }
    const sum = add(old, g.reshape(old.shape));
    copyInto(old, sum, 0, 0);
    sum.dispose();
  };
  const features: Record<Group, Tensor[]>[] = [];
  const text: Tensor[] = [];
  tapes.forEach((t, i) => {
    const r = scope(() => imageBackward(m, t, dlogits[i], sink, opts.inputGrads ?? false));
    if (r.features) features.push(r.features);
    if (r.text) text.push(r.text);
  });
  // A tape serves one backward: free it now (a training step's largest allocation).
  disposeTapes(fwd);
  return opts.inputGrads ? { params, features, textEmbedding: text } : { params };
}

/** Frees the tensors a forward kept for the backward (done by groundingBackward). */
export function disposeTapes(fwd: GroundingForward): void {
  const seen = new Set<unknown>();
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if ('dispose' in v && typeof (v as Tensor).dispose === 'function' && 'shape' in v) {
      (v as Tensor).dispose();
      return;
    }
    for (const x of Object.values(v)) walk(x);
  };
  for (const t of fwd.tapes ?? []) {
    // features are the caller's inputs.
    const { features: _f, ...rest } = t;
    walk(rest);
  }
  fwd.tapes = undefined;
}
