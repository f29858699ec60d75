// The grounding module's parameter tree, named exactly like the official state dict
// (`transfromer_decoder` spelling included), and its PyTorch-like random initialisation.
import type { Runtime } from '../../gpu/runtime.js';
import { Module, Param, namedParams } from '../../nn/module.js';
import { lowbias32, uniform24 } from '../../tensor/hash.js';
import { Tensor } from '../../tensor/tensor.js';
import { Conv2d } from '../layers/conv.js';
import { Linear } from '../layers/linear.js';
import { LayerNorm } from '../layers/norms.js';
import { featureDims, validateConfig, type GroundingConfig } from './config.js';

/** The feature projections: nn.Conv2d(C, O, 1, bias=False) inside an nn.Sequential
 *  (index 0), e.g. `low_feature_conv.0.weight`. */
const proj1x1 = (inChannels: number, outChannels: number) => [new Conv2d(inChannels, outChannels, 1, { bias: false })];

/** BigGAN SNConv2d 3x3 with bias: plain weight, buffers u0 [1, O] and sv0 [1]. */
export class SNConv2d extends Module {
  readonly weight: Param;
  readonly bias: Param;
  readonly u0: Param;
  readonly sv0: Param;
  constructor(readonly inChannels: number, readonly outChannels: number) {
    super();
    this.weight = new Param([outChannels, inChannels, 3, 3]);
    this.bias = new Param([outChannels]);
    this.u0 = new Param([1, outChannels], 'buffer');
    this.sv0 = new Param([1], 'buffer');
  }
}

/** SegBlock(C): bn1 (no affine) -> relu -> conv1 -> bn2 -> relu -> conv2, + relu(bn1(x)). */
export class SegBlock extends Module {
  readonly stored_mean1: Param;
  readonly stored_var1: Param;
  readonly stored_mean2: Param;
  readonly stored_var2: Param;
  readonly conv1: SNConv2d;
  readonly conv2: SNConv2d;
  constructor(readonly channels: number) {
    super();
    this.stored_mean1 = new Param([channels], 'buffer');
    this.stored_var1 = new Param([channels], 'buffer');
    this.stored_mean2 = new Param([channels], 'buffer');
    this.stored_var2 = new Param([channels], 'buffer');
    this.conv1 = new SNConv2d(channels, channels);
    this.conv2 = new SNConv2d(channels, channels);
  }
}

/** nn.MultiheadAttention(E, H, bias=False): in_proj_weight = [Wq; Wk; Wv]. */
export class MultiheadAttention extends Module {
  readonly in_proj_weight: Param;
  readonly out_proj: Linear;
  constructor(readonly dim: number, readonly heads: number) {
    super();
    this.in_proj_weight = new Param([3 * dim, dim]);
    this.out_proj = new Linear(dim, dim, { bias: false });
  }
}

/** Pre-LN decoder layer: self-attention, cross-attention to the patch tokens, ReLU FFN. */
export class DecoderLayer extends Module {
  readonly self_attn: MultiheadAttention;
  readonly multihead_attn: MultiheadAttention;
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly norm3: LayerNorm;
  constructor(dim: number, heads: number, hidden: number) {
    super();
    this.self_attn = new MultiheadAttention(dim, heads);
    this.multihead_attn = new MultiheadAttention(dim, heads);
    this.linear1 = new Linear(dim, hidden);
    this.linear2 = new Linear(hidden, dim);
    this.norm1 = new LayerNorm(dim);
    this.norm2 = new LayerNorm(dim);
    this.norm3 = new LayerNorm(dim);
  }
}

export class TransformerDecoder extends Module {
  readonly layers: DecoderLayer[];
  constructor(c: GroundingConfig) {
    super();
    this.layers = Array.from({ length: c.num_layers }, () => new DecoderLayer(c.embedding_dim, c.num_heads, c.hidden_dim));
  }
}

/** MLP(E, E, F, mlp_layers): ReLU after every layer but the last. */
export class MLP extends Module {
  readonly layers: Linear[];
  constructor(inDim: number, hidden: number, outDim: number, n: number) {
    super();
    this.layers = Array.from({ length: n }, (_, i) => new Linear(i === 0 ? inDim : hidden, i === n - 1 ? outDim : hidden));
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

export class Segmodule extends Module {
  readonly low_feature_conv: Conv2d[];
  readonly mid_feature_conv: Conv2d[];
  readonly mid_feature_mix_conv: SegBlock;
  readonly high_feature_conv: Conv2d[];
  readonly high_feature_mix_conv: SegBlock;
  readonly highest_feature_conv: Conv2d[];
  readonly highest_feature_mix_conv: SegBlock;
  readonly transfromer_decoder: TransformerDecoder;
  readonly mlp: MLP;
  readonly to_k: Linear;
  readonly to_q: Linear;

  constructor(readonly config: GroundingConfig) {
    super();
    validateConfig(config);
    const c = config;
    const dims = featureDims(c);
    this.low_feature_conv = proj1x1(sum(c.feature_channels.low), c.proj_channels.low);
    this.mid_feature_conv = proj1x1(sum(c.feature_channels.mid), c.proj_channels.mid);
    this.mid_feature_mix_conv = new SegBlock(dims.mid);
    this.high_feature_conv = proj1x1(sum(c.feature_channels.high), c.proj_channels.high);
    this.high_feature_mix_conv = new SegBlock(dims.high);
    this.highest_feature_conv = proj1x1(sum(c.feature_channels.highest), c.proj_channels.highest);
    this.highest_feature_mix_conv = new SegBlock(dims.highest);
    this.transfromer_decoder = new TransformerDecoder(c);
    this.mlp = new MLP(c.embedding_dim, c.embedding_dim, dims.highest, c.mlp_layers);
    this.to_k = new Linear(dims.highest * c.patch_size * c.patch_size, c.embedding_dim, { bias: false });
    this.to_q = new Linear(c.context_dim, c.embedding_dim, { bias: false });
  }

  /** PyTorch-like default init from a seeded generator: Linear/Conv weights and biases
   *  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)), attention
   *  in_proj xavier-uniform, u0 ~ N(0, 1), sv0 = 1, BN stats 0 / 1, LayerNorm 1 / 0. */
  initRandom(rt: Runtime, seed: number): void {
    const rand = uniformGenerator(seed);
    const uniform = (n: number, bound: number) => Float32Array.from({ length: n }, () => (2 * rand() - 1) * bound);
    const normal = (n: number) => Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand()));
    const fanIn = new Map<Param, number>();
    const visit = (m: unknown): void => {
      if (m instanceof Conv2d || m instanceof SNConv2d || m instanceof Linear) {
        const fi = m.weight.shape.slice(1).reduce((a, b) => a * b, 1);
        fanIn.set(m.weight, fi);
        if ('bias' in m && m.bias) fanIn.set(m.bias, fi);
      }
      if (m instanceof Module || Array.isArray(m)) for (const v of Object.values(m)) if (v instanceof Module || Array.isArray(v)) visit(v);
    };
    visit(this);
    for (const [name, p] of namedParams(this)) {
      const n = p.shape.reduce((a, b) => a * b, 1);
      const leaf = name.slice(name.lastIndexOf('.') + 1);
      let data: Float32Array;
      if (leaf === 'in_proj_weight') data = uniform(n, Math.sqrt(6 / (p.shape[0] + p.shape[1])));
      else if (leaf === 'u0') data = normal(n);
      else if (leaf === 'sv0' || leaf.startsWith('stored_var')) data = new Float32Array(n).fill(1);
      else if (leaf.startsWith('stored_mean')) data = new Float32Array(n);
      else if (/norm\d\.weight$/.test(name)) data = new Float32Array(n).fill(1);
      else if (/norm\d\.bias$/.test(name)) data = new Float32Array(n);
      else data = uniform(n, 1 / Math.sqrt(fanIn.get(p) ?? p.shape[p.shape.length - 1]));
      p.set(Tensor.from(rt, data, p.shape));
    }
  }
}

/** Seeded uniform [0, 1) generator: 24-bit uniforms of a lowbias32-hashed counter. */
export function uniformGenerator(seed: number): () => number {
  let i = 0;
  const base = lowbias32((seed >>> 0) ^ 0x9e3779b9);
  return () => uniform24(base, i++);
}
