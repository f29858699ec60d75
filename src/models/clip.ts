// CLIPTextModel (transformers names): token + position embeddings, pre-LN encoder
// layers with a causal mask and quick_gelu MLP, final layer norm. Returns the last
// hidden state, optionally every layer's hidden state, and the pooled output (the state
// at argmax(ids), transformers' legacy path that SD 1.x encoders take).
import { ShapeError } from '../gpu/errors.js';
import { attention } from '../nn/attention.js';
import { cast } from '../nn/cast.js';
import { add, unary } from '../nn/elementwise.js';
import { embedding } from '../nn/embedding.js';
import { Module, Param } from '../nn/module.js';
import { Tensor } from '../tensor/tensor.js';
import { scope } from '../tensor/scope.js';
import type { Runtime } from '../gpu/runtime.js';
import { Linear } from './layers/linear.js';
import { moduleScope, nameModules } from './layers/module_scope.js';
import { LayerNorm } from './layers/norms.js';
import { paramDtype } from './precision.js';

export interface CLIPTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  layer_norm_eps: number;
  hidden_act: 'quick_gelu' | 'gelu';
}

/** CLIP ViT-L/14's text tower, as SD 1.x uses it. */
export const SD15_TEXT_CONFIG: CLIPTextConfig = {
  vocab_size: 49408,
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  max_position_embeddings: 77,
  layer_norm_eps: 1e-5,
  hidden_act: 'quick_gelu',
};

export function checkClipConfig(c: CLIPTextConfig): void {
  const bad: string[] = [];
  if (c.hidden_size % c.num_attention_heads !== 0) bad.push(`hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`);
  if (c.hidden_act !== 'quick_gelu' && c.hidden_act !== 'gelu') bad.push(`hidden_act '${c.hidden_act}' is not supported (quick_gelu, gelu)`);
  for (const k of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'max_position_embeddings'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) bad.push(`${k} = ${c[k]} must be a positive integer`);
  }
  if (bad.length) throw new ShapeError(`invalid CLIPTextConfig: ${bad.join('; ')}`);
}

/** transformers' CLIPAttention: its own weight names (q_proj ... out_proj, all with
 *  bias), the shared Linear underneath. */
class CLIPAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  out_proj: Linear;
  constructor(dim: number, readonly heads: number) {
    super();
    this.q_proj = new Linear(dim, dim);
    this.k_proj = new Linear(dim, dim);
    this.v_proj = new Linear(dim, dim);
    this.out_proj = new Linear(dim, dim);
  }
  /** hiddenStates [B, L, D]; the causal mask hides later tokens. */
  forward(hiddenStates: Tensor, residual: Tensor): Tensor {
    return moduleScope(this, hiddenStates.rt, () => {
      const q = this.q_proj.forward(hiddenStates);
      const k = this.k_proj.forward(hiddenStates);
      const v = this.v_proj.forward(hiddenStates);
      const { out, lse } = attention(q, k, v, { heads: this.heads, causal: true });
      lse.dispose();
      return this.out_proj.forward(out, { residual });
    });
  }
}

class CLIPMLP extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor(dim: number, hidden: number, readonly act: 'quick_gelu' | 'gelu') {
    super();
    this.fc1 = new Linear(dim, hidden);
    this.fc2 = new Linear(hidden, dim);
  }
  forward(x: Tensor, residual: Tensor): Tensor {
    return moduleScope(this, x.rt, () => this.fc2.forward(this.fc1.forward(x, { activation: this.act }), { residual }));
  }
}

class CLIPEncoderLayer extends Module {
  self_attn: CLIPAttention;
  layer_norm1: LayerNorm;
  mlp: CLIPMLP;
  layer_norm2: LayerNorm;
  constructor(c: CLIPTextConfig) {
    super();
    this.self_attn = new CLIPAttention(c.hidden_size, c.num_attention_heads);
    this.layer_norm1 = new LayerNorm(c.hidden_size, c.layer_norm_eps);
    this.mlp = new CLIPMLP(c.hidden_size, c.intermediate_size, c.hidden_act);
    this.layer_norm2 = new LayerNorm(c.hidden_size, c.layer_norm_eps);
  }
  forward(x: Tensor): Tensor {
    // Its own scope: the layer's projections and MLP states are freed when it returns.
    return moduleScope(this, x.rt, () => scope(() => {
      const h = this.self_attn.forward(this.layer_norm1.forward(x), x);
      return this.mlp.forward(this.layer_norm2.forward(h), h);
    }));
  }
}

class Embedding extends Module {
  weight: Param;
  constructor(rows: number, dim: number) {
    super();
    this.weight = new Param([rows, dim]);
  }
}

class CLIPEmbeddings extends Module {
  token_embedding: Embedding;
  position_embedding: Embedding;
  constructor(c: CLIPTextConfig) {
    super();
    this.token_embedding = new Embedding(c.vocab_size, c.hidden_size);
    this.position_embedding = new Embedding(c.max_position_embeddings, c.hidden_size);
  }
}

class CLIPEncoder extends Module {
  layers: CLIPEncoderLayer[];
  constructor(c: CLIPTextConfig) {
    super();
    this.layers = Array.from({ length: c.num_hidden_layers }, () => new CLIPEncoderLayer(c));
  }
}

class CLIPTextTransformer extends Module {
  embeddings: CLIPEmbeddings;
  encoder: CLIPEncoder;
  final_layer_norm: LayerNorm;
  constructor(c: CLIPTextConfig) {
    super();
    this.embeddings = new CLIPEmbeddings(c);
    this.encoder = new CLIPEncoder(c);
    this.final_layer_norm = new LayerNorm(c.hidden_size, c.layer_norm_eps);
  }
}

/** Every output is f32, also when the weights are f16 (the model runs in their dtype). */
export interface CLIPTextOutput {
  /** [B, L, D] after the final layer norm. */
  lastHiddenState: Tensor;
  /** [B, D]: lastHiddenState at argmax(ids) per row. */
  pooled: Tensor;
  /** With `hiddenStates: true`: embeddings, then each layer's output (before the final norm). */
  hiddenStates?: Tensor[];
}

export class CLIPTextModel extends Module {
  text_model: CLIPTextTransformer;
  constructor(readonly config: CLIPTextConfig) {
    super();
    checkClipConfig(config);
    this.text_model = new CLIPTextTransformer(config);
    nameModules(this);
  }

  /** ids: rows of token ids (each of length <= max_position_embeddings). */
  forward(rt: Runtime, ids: number[][], opts: { hiddenStates?: boolean } = {}): CLIPTextOutput {
    const B = ids.length;
    const L = ids[0]?.length ?? 0;
    const c = this.config;
    if (B === 0 || L === 0 || L > c.max_position_embeddings || ids.some((r) => r.length !== L)) {
      throw new ShapeError(`CLIPTextModel: ids must be ${B} rows of equal length <= ${c.max_position_embeddings}`);
    }
    const flat = ids.flat();
    const badId = flat.find((v) => !Number.isInteger(v) || v < 0 || v >= c.vocab_size);
    if (badId !== undefined) throw new ShapeError(`CLIPTextModel: token id ${badId} is outside the vocabulary (0..${c.vocab_size - 1})`);
    return scope(() => {
      const tm = this.text_model;
      const idT = Tensor.from(rt, Int32Array.from(flat), [B, L], 'i32', 'input_ids');
      const posT = Tensor.from(rt, Int32Array.from({ length: L }, (_, i) => i), [1, L], 'i32', 'position_ids');
      // The lookups widen to f32 and sum there; the layers run in the weights' dtype.
      const dtype = paramDtype(tm.embeddings.token_embedding.weight);
      let x = moduleScope(tm.embeddings, rt, () =>
        cast(add(embedding(tm.embeddings.token_embedding.weight.t, idT), embedding(tm.embeddings.position_embedding.weight.t, posT)), dtype));
      const hidden: Tensor[] = [];
      if (opts.hiddenStates) hidden.push(x);
      for (const layer of tm.encoder.layers) {
        const next = layer.forward(x);
        if (opts.hiddenStates) hidden.push(next);
        else x.dispose();
        x = next;
      }
      const last = cast(tm.final_layer_norm.forward(x), 'f32');
      // Legacy pooling: the first position of the largest id (EOS) in each row.
      const rows = ids.map((r, b) => b * L + r.indexOf(Math.max(...r)));
      const pooled = embedding(last.reshape([B * L, c.hidden_size]), Tensor.from(rt, Int32Array.from(rows), [B], 'i32', 'pooled_index'));
      return { lastHiddenState: last, pooled, hiddenStates: opts.hiddenStates ? hidden.map((h) => cast(h, 'f32')) : undefined };
    });
  }
}
