// The shared layers (src/models/layers): the Attention options that SD's UNet and VAE
// do not exercise through the golden parity (token input with residual_connection and
// rescale_output_factor, NCHW input with cross-attention and no residual, the head-
// averaged probabilities), against a float64 loop reference; and the ResnetBlock2D and
// Attention input errors.
import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import type { Runtime } from '../../src/gpu/runtime.js';
import { Attention, type AttentionConfig } from '../../src/models/layers/attention.js';
import { ResnetBlock2D } from '../../src/models/layers/resnet.js';
import { namedParams, type Module } from '../../src/nn/module.js';
import { keep } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { expectClose, randomArray, randomTensor, runtime, TOL } from '../helpers.js';

function randomWeights(rt: Runtime, model: Module, seed: number): Map<string, Float32Array> {
  const host = new Map<string, Float32Array>();
  let s = seed;
  for (const [name, p] of namedParams(model)) {
    const data = randomArray(p.shape.reduce((a, b) => a * b, 1), s++, -0.5, 0.5);
    p.set(Tensor.from(rt, data, p.shape));
    host.set(name, data);
  }
  return host;
}

/** rows [n, i] x W^T [o, i] + b -> [n, o]. */
function linearRef(x: Float64Array, n: number, w: Float32Array, b: Float32Array | undefined, i: number, o: number): Float64Array {
  const y = new Float64Array(n * o);
  for (let r = 0; r < n; r++) for (let c = 0; c < o; c++) {
    let acc = b ? b[c] : 0;
    for (let k = 0; k < i; k++) acc += x[r * i + k] * w[c * i + k];
    y[r * o + c] = acc;
  }
  return y;
}

interface RefInput {
  cfg: AttentionConfig;
  w: Map<string, Float32Array>;
  /** [B, L, C] tokens or [B, C, H, W] (spatial). */
  x: Float32Array;
  shape: number[];
  context?: { data: Float32Array; Lk: number };
  residual?: Float32Array;
}

/** diffusers' Attention.forward with AttnProcessor in float64: output in x's layout, and
 *  the head-averaged probabilities [B, Lq, Lk]. */
function attentionRef(a: RefInput): { out: Float64Array; probs: Float64Array } {
  const { cfg, w } = a;
  const spatial = a.shape.length === 4;
  const [B, C] = spatial ? a.shape : [a.shape[0], a.shape[2]];
  const L = spatial ? a.shape[2] * a.shape[3] : a.shape[1];
  const get = (n: string) => w.get(n);
  const need = (n: string) => get(n) ?? new Float32Array();
  // Group norm over [B, C, L] (spatial only), then tokens [B, L, C].
  const hs = Float64Array.from(a.x);
  if (cfg.normNumGroups) {
    const G = cfg.normNumGroups;
    const cg = C / G;
    for (let b = 0; b < B; b++) for (let g = 0; g < G; g++) {
      const base = (b * C + g * cg) * L;
      let mean = 0;
      for (let i = 0; i < cg * L; i++) mean += a.x[base + i];
      mean /= cg * L;
      let v = 0;
      for (let i = 0; i < cg * L; i++) v += (a.x[base + i] - mean) ** 2;
      const rstd = 1 / Math.sqrt(v / (cg * L) + (cfg.eps ?? 1e-5));
      for (let i = 0; i < cg * L; i++) {
        const c = g * cg + Math.floor(i / L);
        hs[base + i] = (a.x[base + i] - mean) * rstd * need('group_norm.weight')[c] + need('group_norm.bias')[c];
      }
    }
  }
  const toTokens = (t: Float64Array) => {
    if (!spatial) return t;
    const out = new Float64Array(B * L * C);
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let l = 0; l < L; l++) out[(b * L + l) * C + c] = t[(b * C + c) * L + l];
    return out;
  };
  const tokens = toTokens(hs);
  const inner = cfg.heads * cfg.dimHead;
  const cross = cfg.crossAttentionDim ?? C;
  const Lk = a.context ? a.context.Lk : L;
  const ctx = a.context ? Float64Array.from(a.context.data) : tokens;
  const q = linearRef(tokens, B * L, need('to_q.weight'), get('to_q.bias'), C, inner);
  const k = linearRef(ctx, B * Lk, need('to_k.weight'), get('to_k.bias'), cross, inner);
  const v = linearRef(ctx, B * Lk, need('to_v.weight'), get('to_v.bias'), cross, inner);
  const attn = new Float64Array(B * L * inner);
  const probs = new Float64Array(B * L * Lk);
  const D = cfg.dimHead;
  for (let b = 0; b < B; b++) for (let h = 0; h < cfg.heads; h++) for (let i = 0; i < L; i++) {
    const s = new Float64Array(Lk);
    for (let j = 0; j < Lk; j++) {
      let acc = 0;
      for (let d = 0; d < D; d++) acc += q[(b * L + i) * inner + h * D + d] * k[(b * Lk + j) * inner + h * D + d];
      s[j] = acc / Math.sqrt(D);
    }
    const m = Math.max(...s);
    let z = 0;
    for (let j = 0; j < Lk; j++) z += (s[j] = Math.exp(s[j] - m));
    for (let j = 0; j < Lk; j++) {
      const p = s[j] / z;
      probs[(b * L + i) * Lk + j] += p / cfg.heads;
      for (let d = 0; d < D; d++) attn[(b * L + i) * inner + h * D + d] += p * v[(b * Lk + j) * inner + h * D + d];
    }
  }
  const o = linearRef(attn, B * L, need('to_out.0.weight'), get('to_out.0.bias'), inner, C);
  const input = toTokens(Float64Array.from(a.x));
  const residual = a.residual ? toTokens(Float64Array.from(a.residual)) : undefined;
  for (let i = 0; i < o.length; i++) {
    if (cfg.residualConnection) o[i] += input[i];
    o[i] /= cfg.rescaleOutputFactor ?? 1;
    if (residual) o[i] += residual[i];
  }
  if (!spatial) return { out: o, probs };
  const out = new Float64Array(o.length);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let l = 0; l < L; l++) out[(b * C + c) * L + l] = o[(b * L + l) * C + c];
  return { out, probs };
}

describe('shared Attention (diffusers options)', () => {
  it('token input: residual_connection, rescale_output_factor 2, q/k/v bias, caller residual, probabilities', async () => {
    const rt = await runtime();
    const cfg: AttentionConfig = { queryDim: 8, heads: 2, dimHead: 4, bias: true, residualConnection: true, rescaleOutputFactor: 2 };
    const attn = new Attention(cfg);
    const w = randomWeights(rt, attn, 10);
    const x = randomTensor(rt, [2, 7, 8], 20);
    const res = randomTensor(rt, [2, 7, 8], 21);
    let probs: Tensor | undefined;
    const y = attn.forward(x.t, { residual: res.t, onProbs: (p) => (probs = keep(p)) });
    const ref = attentionRef({ cfg, w, x: x.data, shape: [2, 7, 8], residual: res.data });
    expect(y.shape).toEqual([2, 7, 8]);
    expectClose(await y.toArray(), ref.out, { label: 'tokens, rescale 2', relL2: TOL.matmul });
    expect(probs?.shape).toEqual([2, 7, 7]);
    expectClose((await probs?.toArray()) ?? [], ref.probs, { label: 'head-averaged probabilities', relL2: TOL.matmul });
  });

  it('NCHW input: group_norm, cross-attention to encoder states, no residual, to_out bias added alone', async () => {
    const rt = await runtime();
    const cfg: AttentionConfig = { queryDim: 8, crossAttentionDim: 6, heads: 2, dimHead: 4, normNumGroups: 2, eps: 1e-6 };
    const attn = new Attention(cfg);
    const w = randomWeights(rt, attn, 30);
    const x = randomTensor(rt, [2, 8, 3, 5], 40);
    const ehs = randomTensor(rt, [2, 4, 6], 41);
    const y = attn.forward(x.t, { encoderHiddenStates: ehs.t });
    const ref = attentionRef({ cfg, w, x: x.data, shape: [2, 8, 3, 5], context: { data: ehs.data, Lk: 4 } });
    expect(y.shape).toEqual([2, 8, 3, 5]);
    expectClose(await y.toArray(), ref.out, { label: 'NCHW cross-attention', relL2: TOL.matmul });
  });

  it('NCHW input: residual_connection with rescale 0.5 and a caller residual, single head through the unfused path', async () => {
    const rt = await runtime();
    const cfg: AttentionConfig = { queryDim: 8, heads: 1, dimHead: 8, bias: true, normNumGroups: 4, residualConnection: true, rescaleOutputFactor: 0.5 };
    const attn = new Attention(cfg);
    const w = randomWeights(rt, attn, 50);
    const x = randomTensor(rt, [1, 8, 4, 3], 60);
    const res = randomTensor(rt, [1, 8, 4, 3], 61);
    // 160 bytes: one row of 12 f32 scores per block, so the query rows go in 3-row chunks.
    const y = attn.forward(x.t, { residual: res.t, unfusedAttention: true, maxBindingBytes: 160 });
    const ref = attentionRef({ cfg, w, x: x.data, shape: [1, 8, 4, 3], residual: res.data });
    expectClose(await y.toArray(), ref.out, { label: 'NCHW unfused, rescale 0.5', relL2: TOL.matmul });
  });

  it('rejects input of the wrong width, and group_norm on token input', async () => {
    const rt = await runtime();
    const attn = new Attention({ queryDim: 8, heads: 2, dimHead: 4, normNumGroups: 2 });
    randomWeights(rt, attn, 70);
    expect(() => attn.forward(randomTensor(rt, [1, 3, 6], 71).t)).toThrow(ShapeError);
    expect(() => attn.forward(randomTensor(rt, [1, 3, 8], 72).t)).toThrow(/group_norm .* needs NCHW input/);
  });
});

describe('shared ResnetBlock2D', () => {
  it('requires a time embedding exactly when built with temb_channels', async () => {
    const rt = await runtime();
    const withTemb = new ResnetBlock2D(4, 8, { tembChannels: 6, groups: 2, eps: 1e-5 });
    const noTemb = new ResnetBlock2D(4, 4, { tembChannels: null, groups: 2, eps: 1e-6 });
    randomWeights(rt, withTemb, 80);
    randomWeights(rt, noTemb, 90);
    const x = randomTensor(rt, [1, 4, 3, 3], 81).t;
    expect([...namedParams(withTemb).keys()]).toContain('time_emb_proj.weight');
    expect([...namedParams(noTemb).keys()].some((n) => n.startsWith('time_emb_proj') || n.startsWith('conv_shortcut'))).toBe(false);
    expect(() => withTemb.forward(x)).toThrow(InputError);
    expect(() => noTemb.forward(x, randomTensor(rt, [1, 6], 82).t)).toThrow(/temb_channels=None/);
    expect(withTemb.forward(x, randomTensor(rt, [1, 6], 83).t).shape).toEqual([1, 8, 3, 3]);
  });
});
