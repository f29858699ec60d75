// AutoencoderKL (diffusers v0.25.1 autoencoder_kl.py, vae.py Encoder/Decoder): the SD 1.x
// VAE. encode: image [B, in, H, W] in [-1, 1] -> moments [B, 2*latent, H/f, W/f] and the
// diagonal Gaussian's mean, logvar (clamped to [-30, 20]) and std; decode: latent
// [B, latent, h, w] -> image [B, out, h*f, w*f], f = 2^(blocks-1). scaling_factor is NOT
// applied here (the pipeline multiplies encoder samples by it and divides latents by it).
// Taps return block outputs as the golden fixtures' hooks define them. Inputs may be f32 or
// f16; the blocks run in the weights' dtype, the outputs are f32 (taps: the weights' dtype).
import { InputError, ShapeError } from '../../gpu/errors.js';
import type { Runtime } from '../../gpu/runtime.js';
import { cast } from '../../nn/cast.js';
import { linearCombination } from '../../nn/combine.js';
import { unary } from '../../nn/elementwise.js';
import { slice } from '../../nn/layout.js';
import { Module } from '../../nn/module.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Conv2d } from '../layers/conv.js';
import { moduleScope, nameModules } from '../layers/module_scope.js';
import { GroupNorm } from '../layers/norms.js';
import { paramDtype } from '../precision.js';
import { DownEncoderBlock2D, UNetMidBlock2D, UpDecoderBlock2D, VAE_EPS, type BlockOptions } from './blocks.js';
import { vaeConfig, type AutoencoderKLConfig } from './config.js';

export interface VaeRunOptions extends BlockOptions {
  /** Block outputs to return: 'encoder.down_blocks.i', 'encoder.mid_block',
   *  'decoder.mid_block', 'decoder.up_blocks.i' (after the block's resampler). */
  taps?: readonly string[];
}

export interface VaeEncodeOutput {
  moments: Tensor;
  mean: Tensor;
  logvar: Tensor;
  std: Tensor;
  taps: Map<string, Tensor>;
}

export interface VaeDecodeOutput {
  image: Tensor;
  taps: Map<string, Tensor>;
}

/** Collects the requested taps; a tensor is kept under its name when asked for. */
class Taps {
  readonly out = new Map<string, Tensor>();
  private readonly want: Set<string>;
  constructor(names: readonly string[], valid: string[], what: string) {
    const unknown = names.filter((n) => !valid.includes(n));
    if (unknown.length) throw new InputError(`${what}: unknown tap(s) ${unknown.join(', ')}; available: ${valid.join(', ')}`);
    this.want = new Set(names);
  }
  record(name: string, t: Tensor): Tensor {
    if (this.want.has(name)) this.out.set(name, t);
    return t;
  }
  /** Frees an intermediate as soon as the next block has consumed it (peak memory at
   *  512x512), unless it is a returned tap. */
  release(t: Tensor): void {
    if (![...this.out.values()].includes(t)) t.dispose();
  }
}

function checkInput(t: Tensor, channels: number, multiple: number, what: string): void {
  const [, c, h, w] = t.shape;
  if (t.shape.length !== 4 || c !== channels || h % multiple !== 0 || w % multiple !== 0 || (t.dtype !== 'f32' && t.dtype !== 'f16')) {
    throw new ShapeError(`${what}: expects f32 or f16 [B, ${channels}, H, W] with H and W multiples of ${multiple}, got ${t.toString()}`);
  }
}

/** vae.py Encoder (double_z): conv_in, down blocks, mid block, norm + SiLU, conv_out. */
export class Encoder extends Module {
  conv_in: Conv2d;
  down_blocks: DownEncoderBlock2D[];
  mid_block: UNetMidBlock2D;
  conv_norm_out: GroupNorm;
  conv_out: Conv2d;
  constructor(c: AutoencoderKLConfig) {
    super();
    const boc = c.block_out_channels;
    const g = c.norm_num_groups;
    this.conv_in = new Conv2d(c.in_channels, boc[0], 3, { padding: 1 });
    this.down_blocks = boc.map((ch, i) => new DownEncoderBlock2D(i === 0 ? boc[0] : boc[i - 1], ch, c.layers_per_block, g, i < boc.length - 1));
    this.mid_block = new UNetMidBlock2D(boc[boc.length - 1], g);
    this.conv_norm_out = new GroupNorm(g, boc[boc.length - 1], VAE_EPS);
    this.conv_out = new Conv2d(boc[boc.length - 1], 2 * c.latent_channels, 3, { padding: 1 });
  }
  tapNames(): string[] {
    return [...this.down_blocks.map((_, i) => `encoder.down_blocks.${i}`), 'encoder.mid_block'];
  }
  forward(x: Tensor, taps: Taps, opts: BlockOptions = {}): Tensor {
    return moduleScope(this, x.rt, () => this.run(x, taps, opts));
  }
  private run(x: Tensor, taps: Taps, opts: BlockOptions): Tensor {
    let h = this.conv_in.forward(x, opts);
    const step = (name: string, f: (t: Tensor) => Tensor) => {
      const next = taps.record(name, f(h));
      taps.release(h);
      h = next;
    };
    this.down_blocks.forEach((b, i) => step(`encoder.down_blocks.${i}`, (t) => b.forward(t, opts)));
    step('encoder.mid_block', (t) => this.mid_block.forward(t, opts));
    step('encoder.conv_norm_out', (t) => this.conv_norm_out.forward(t, 'silu'));
    return this.conv_out.forward(h, opts);
  }
}

/** vae.py Decoder: conv_in, mid block, up blocks (layers_per_block + 1 resnets each),
 *  norm + SiLU, conv_out. */
export class Decoder extends Module {
  conv_in: Conv2d;
  up_blocks: UpDecoderBlock2D[];
  mid_block: UNetMidBlock2D;
  conv_norm_out: GroupNorm;
  conv_out: Conv2d;
  constructor(c: AutoencoderKLConfig) {
    super();
    const rev = [...c.block_out_channels].reverse();
    const g = c.norm_num_groups;
    this.conv_in = new Conv2d(c.latent_channels, rev[0], 3, { padding: 1 });
    this.up_blocks = rev.map((ch, i) => new UpDecoderBlock2D(i === 0 ? rev[0] : rev[i - 1], ch, c.layers_per_block + 1, g, i < rev.length - 1));
    this.mid_block = new UNetMidBlock2D(rev[0], g);
    this.conv_norm_out = new GroupNorm(g, rev[rev.length - 1], VAE_EPS);
    this.conv_out = new Conv2d(rev[rev.length - 1], c.out_channels, 3, { padding: 1 });
  }
  tapNames(): string[] {
    return ['decoder.mid_block', ...this.up_blocks.map((_, i) => `decoder.up_blocks.${i}`)];
  }
  forward(z: Tensor, taps: Taps, opts: BlockOptions = {}): Tensor {
    return moduleScope(this, z.rt, () => this.run(z, taps, opts));
  }
  private run(z: Tensor, taps: Taps, opts: BlockOptions): Tensor {
    let h = this.conv_in.forward(z, opts);
    const step = (name: string, f: (t: Tensor) => Tensor) => {
      const next = taps.record(name, f(h));
      taps.release(h);
      h = next;
    };
    step('decoder.mid_block', (t) => this.mid_block.forward(t, opts));
    this.up_blocks.forEach((b, i) => step(`decoder.up_blocks.${i}`, (t) => b.forward(t, opts)));
    step('decoder.conv_norm_out', (t) => this.conv_norm_out.forward(t, 'silu'));
    return this.conv_out.forward(h, opts);
  }
}

export class AutoencoderKL extends Module {
  encoder: Encoder;
  decoder: Decoder;
  quant_conv: Conv2d;
  post_quant_conv: Conv2d;
  readonly config: AutoencoderKLConfig;
  constructor(config: Partial<AutoencoderKLConfig>) {
    super();
    this.config = vaeConfig(config);
    const lat = this.config.latent_channels;
    this.encoder = new Encoder(this.config);
    this.decoder = new Decoder(this.config);
    this.quant_conv = new Conv2d(2 * lat, 2 * lat, 1);
    this.post_quant_conv = new Conv2d(lat, lat, 1);
    nameModules(this);
  }

  /** Spatial factor between images and latents, 2^(number of blocks - 1). */
  get scaleFactor(): number {
    return 2 ** (this.config.block_out_channels.length - 1);
  }

  /** image [B, in_channels, H, W] (H, W multiples of scaleFactor) -> moments = quant_conv(
   *  encoder(image)) and DiagonalGaussianDistribution's mean, logvar, std. */
  encode(rt: Runtime, image: Tensor, opts: VaeRunOptions = {}): VaeEncodeOutput {
    checkRuntime(rt, image, 'AutoencoderKL.encode');
    checkInput(image, this.config.in_channels, this.scaleFactor, 'AutoencoderKL.encode');
    const taps = new Taps(opts.taps ?? [], this.encoder.tapNames(), 'AutoencoderKL.encode');
    const lat = this.config.latent_channels;
    return scope(() => {
      // The encoder runs in its weights' dtype; the moments and what follows are f32.
      const x = cast(image, paramDtype(this.encoder.conv_in.weight));
      const moments = cast(this.quant_conv.forward(this.encoder.forward(x, taps, opts), opts), 'f32');
      const mean = slice(moments, 1, 0, lat);
      const logvar = linearCombination([[1, slice(moments, 1, lat, 2 * lat)]], 0, [-30, 20]);
      const std = unary(logvar, 'exp', 0.5);
      return { moments, mean, logvar, std, taps: taps.out };
    });
  }

  /** latent [B, latent_channels, h, w] (already divided by scaling_factor) -> image
   *  [B, out_channels, h*f, w*f] = decoder(post_quant_conv(latent)). */
  decode(rt: Runtime, latent: Tensor, opts: VaeRunOptions = {}): Tensor {
    return this.decodeWithTaps(rt, latent, opts).image;
  }

  decodeWithTaps(rt: Runtime, latent: Tensor, opts: VaeRunOptions = {}): VaeDecodeOutput {
    checkRuntime(rt, latent, 'AutoencoderKL.decode');
    checkInput(latent, this.config.latent_channels, 1, 'AutoencoderKL.decode');
    const taps = new Taps(opts.taps ?? [], this.decoder.tapNames(), 'AutoencoderKL.decode');
    // The decoder runs in its weights' dtype; the image comes back in f32.
    return scope(() => {
      const z = cast(latent, paramDtype(this.post_quant_conv.weight));
      return { image: cast(this.decoder.forward(this.post_quant_conv.forward(z, opts), taps, opts), 'f32'), taps: taps.out };
    });
  }
}

function checkRuntime(rt: Runtime, t: Tensor, what: string): void {
  if (t.rt !== rt) throw new InputError(`${what}: the input tensor belongs to another runtime`);
}
