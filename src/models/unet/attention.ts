// The SD 1.x spatial transformer (diffusers transformer_2d.py, attention.py at v0.25.1):
// Transformer2DModel (continuous input) holding BasicTransformerBlocks of self-attention,
// cross-attention (the shared Attention, layers/attention.ts) and a GEGLU feed-forward.
// Attention runs through the fused kernel (no [B, H, Lq, Lk] score tensor); projections
// carry their bias and the block's residual in the matmul epilogue.
import { add } from '../../nn/elementwise.js';
import { geglu } from '../../nn/geglu.js';
import { copyInto, slice } from '../../nn/layout.js';
import { matmul } from '../../nn/matmul.js';
import { Module } from '../../nn/module.js';
import { scope } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';
import { Attention } from '../layers/attention.js';
import { Conv2d } from '../layers/conv.js';
import { Linear } from '../layers/linear.js';
import { moduleScope } from '../layers/module_scope.js';
import { GroupNorm, LayerNorm } from '../layers/norms.js';
import type { ForwardContext } from './context.js';

/** GEGLU: proj to 2*inner, then hidden * gelu(gate) (first half hidden, second gate). */
export class GEGLU extends Module {
  proj: Linear;
  constructor(dim: number, readonly inner: number) {
    super();
    this.proj = new Linear(dim, inner * 2);
  }
  forward(x: Tensor): Tensor {
    return moduleScope(this, x.rt, () => scope(() => geglu(this.proj.forward(x))));
  }
}

/** FeedForward.net: index 0 is GEGLU, 1 dropout (no weights), 2 the output Linear. */
class FeedForwardNet extends Module {
  '0': GEGLU;
  '2': Linear;
  constructor(dim: number, inner: number) {
    super();
    this['0'] = new GEGLU(dim, inner);
    this['2'] = new Linear(inner, dim);
  }
}

export class FeedForward extends Module {
  net: FeedForwardNet;
  constructor(readonly dim: number, mult = 4) {
    super();
    this.net = new FeedForwardNet(dim, dim * mult);
  }

  /** x [B, L, dim] -> net(x) + residual. When the [rows, 2*inner] projection would not
   *  fit one storage binding (SD at 512x512 with batch 4 or more), rows go in chunks.
   *  `maxBindingBytes` (tests) lowers the adapter's limit to force the chunked path. */
  forward(x: Tensor, residual: Tensor, maxBindingBytes = x.rt.limits.maxStorageBufferBindingSize): Tensor {
    const rows = x.size / this.dim;
    const inner = this.net['0'].inner;
    const rowBytes = 2 * inner * (x.dtype === 'f16' ? 2 : 4);
    const maxRows = Math.max(1, Math.floor(maxBindingBytes / rowBytes));
    const run = (xs: Tensor, res: Tensor) => scope(() => this.net['2'].forward(this.net['0'].forward(xs), { residual: res }));
    if (rows <= maxRows) return moduleScope(this, x.rt, () => run(x, residual));
    return moduleScope(this, x.rt, () => scope(() => {
      const x2 = x.reshape([rows, this.dim]);
      const r2 = residual.reshape([rows, this.dim]);
      const out = Tensor.empty(x.rt, [rows, this.dim], x.dtype, 'feed_forward');
      for (let start = 0; start < rows; start += maxRows) {
        const end = Math.min(rows, start + maxRows);
        scope(() => copyInto(out, run(slice(x2, 0, start, end), slice(r2, 0, start, end)), 0, start));
      }
      return out.reshape(x.shape);
    }));
  }
}

/** Pre-LN block: attn1 (self), attn2 (cross to the text states), GEGLU feed-forward,
 *  each added to the running hidden states (norm_type 'layer_norm', eps 1e-5). The
 *  attentions are diffusers' Attention(query_dim, cross_attention_dim, heads, dim_head,
 *  bias=attention_bias False, out_bias True); their residual rides on to_out's epilogue. */
export class BasicTransformerBlock extends Module {
  norm1: LayerNorm;
  attn1: Attention;
  norm2: LayerNorm;
  attn2: Attention;
  norm3: LayerNorm;
  ff: FeedForward;
  constructor(dim: number, heads: number, dimHead: number, crossDim: number) {
    super();
    this.norm1 = new LayerNorm(dim);
    this.attn1 = new Attention({ queryDim: dim, heads, dimHead });
    this.norm2 = new LayerNorm(dim);
    this.attn2 = new Attention({ queryDim: dim, crossAttentionDim: crossDim, heads, dimHead });
    this.norm3 = new LayerNorm(dim);
    this.ff = new FeedForward(dim);
  }

  /** hiddenStates [B, HW, dim]; `path` names attn2 for the probability maps. */
  forward(ctx: ForwardContext, hiddenStates: Tensor, path: string): Tensor {
    return moduleScope(this, hiddenStates.rt, () => scope(() => {
      let h = this.attn1.forward(this.norm1.forward(hiddenStates), { residual: hiddenStates });
      const onProbs = ctx.crossAttention ? (p: Tensor) => ctx.recordProbs(`${path}.attn2`, p) : undefined;
      const sink = ctx.sink;
      const headProbs = sink?.wants(`${path}.attn2`) ? { rows: sink.rows, receive: (p: Tensor) => sink.receive(`${path}.attn2`, p) } : undefined;
      h = this.attn2.forward(this.norm2.forward(h), { encoderHiddenStates: ctx.encoderHiddenStates, residual: h, onProbs, headProbs });
      return this.ff.forward(this.norm3.forward(h), h);
    }));
  }
}

/** Transformer2DModel over an NCHW feature map: GroupNorm (eps 1e-6) -> proj_in (1x1
 *  conv, or Linear with use_linear_projection) -> blocks over the HW tokens -> proj_out
 *  -> + input. Both projections act on [C, HW] planes, so the NCHW <-> [B, HW, C]
 *  permutes fold into the matmuls (transposed operands) instead of separate copies. */
export class Transformer2DModel extends Module {
  norm: GroupNorm;
  /** 1x1 conv (weight [out, in, 1, 1]) or, with use_linear_projection, a Linear
   *  ([out, in]); used as the matrix [out, in] either way. */
  proj_in: Conv2d | Linear;
  transformer_blocks: BasicTransformerBlock[];
  proj_out: Conv2d | Linear;
  readonly inner: number;

  constructor(
    readonly heads: number,
    dimHead: number,
    readonly channels: number,
    layers: number,
    crossDim: number,
    groups: number,
    useLinearProjection: boolean,
  ) {
    super();
    const inner = heads * dimHead;
    this.inner = inner;
    const projection = (i: number, o: number) => (useLinearProjection ? new Linear(i, o) : new Conv2d(i, o, 1));
    this.norm = new GroupNorm(groups, channels, 1e-6);
    this.proj_in = projection(channels, inner);
    this.transformer_blocks = Array.from({ length: layers }, () => new BasicTransformerBlock(inner, heads, dimHead, crossDim));
    this.proj_out = projection(inner, channels);
  }

  /** x [B, C, H, W] -> same shape; `path` is this module's name (e.g. down_blocks.1.attentions.0). */
  forward(ctx: ForwardContext, x: Tensor, path: string): Tensor {
    return moduleScope(this, x.rt, () => scope(() => {
      const [B, C, H, W] = x.shape;
      const inner = this.inner;
      const normed = this.norm.forward(x).reshape([B, C, H * W]);
      // [B, C, HW]^T [HW, C] x W^T [C, inner] -> [B, HW, inner] (the permute(0, 2, 3, 1)).
      let h = moduleScope(this.proj_in, x.rt, () => matmul(normed, this.proj_in.weight.t.reshape([inner, C]), { transA: true, transB: true, bias: this.proj_in.bias?.t }));
      this.transformer_blocks.forEach((block, i) => {
        h = block.forward(ctx, h, `${path}.transformer_blocks.${i}`);
      });
      // W [C, inner] x h^T [inner, HW] -> [B, C, HW]: proj_out and the permute back in one
      // product. Its bias is per row here, so it rides on the residual instead.
      return moduleScope(this.proj_out, x.rt, () => {
        const bias = this.proj_out.bias?.t.reshape([C, 1]);
        const residual = bias ? add(x.reshape([B, C, H * W]), bias) : x.reshape([B, C, H * W]);
        return matmul(this.proj_out.weight.t.reshape([C, inner]), h, { transB: true, residual }).reshape([B, C, H, W]);
      });
    }));
  }
}
