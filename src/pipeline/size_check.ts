// Image-size checks for text-to-image generation, done before anything is allocated, so
// that a size the adapter cannot run fails at once with the limit instead of minutes
// later (or with the process killed for memory). The figures follow how the models run
// (f32 activations): every convolution runs in bands of output rows, so one output row's
// input (Cin x 3 rows x padded width) must fit a storage binding; fused attention binds
// its whole [rows, tokens, channels] q/k/v; every tensor must fit one buffer; and the
// activations held at once (the UNet's skip connections, the VAE's full-size maps) plus
// the weights must fit the memory the device can use.
import { totalmem } from 'node:os';
import { InputError, LimitError, formatBytes } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { ResolvedUNetConfig, UNet2DConditionModel } from '../models/unet/index.js';
import type { AutoencoderKLConfig } from '../models/vae/config.js';
import type { AutoencoderKL } from '../models/vae/vae.js';
import { namedParams, type Module } from '../nn/module.js';

/** Bytes per activation element (activations are f32). */
const EL = 4;
/** Kernel rows and the extra columns a banded convolution's padded input row carries. */
const CONV_ROWS = 3;
const CONV_SLACK = 2 + 16;

export interface GenerationSize {
  height: number;
  width: number;
  batchSize: number;
}

/** The model figures the checks need (configs only: no weights have to be loaded). */
export interface GenerationModel {
  unet: ResolvedUNetConfig;
  vae: AutoencoderKLConfig;
  /** Bytes of every weight on the device (all three models). */
  weightBytes: number;
}

/** The figures of built models (weights need not be loaded yet). */
export function generationModel(parts: { unet: UNet2DConditionModel; vae: AutoencoderKL; textEncoder: Module }, dtype: 'f32' | 'f16' = 'f32'): GenerationModel {
  let elements = 0;
  for (const m of [parts.unet, parts.vae, parts.textEncoder]) for (const p of namedParams(m).values()) elements += p.shape.reduce((a, b) => a * b, 1);
  return { unet: parts.unet.resolved, vae: parts.vae.config, weightBytes: elements * (dtype === 'f16' ? 2 : 4) };
}

export interface DeviceLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  minStorageBufferOffsetAlignment: number;
  maxTextureDimension2D: number;
  /** Memory the device may use: the host's for a software adapter, and an upper bound
   *  (WebGPU cannot query VRAM) for a hardware one. */
  memoryBytes: number;
  adapterName: string;
}

export function deviceLimits(rt: Runtime): DeviceLimits {
  const l = rt.limits;
  return {
    maxBufferSize: l.maxBufferSize,
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    minStorageBufferOffsetAlignment: l.minStorageBufferOffsetAlignment,
    maxTextureDimension2D: l.maxTextureDimension2D,
    memoryBytes: totalmem(),
    adapterName: rt.adapterName,
  };
}

interface Level {
  h: number;
  w: number;
  /** Widest convolution input at this resolution (skip concatenations included). */
  cin: number;
  /** Channels of an attention layer at this resolution, 0 without one. */
  attn: number;
  /** Tensors of `channels` kept alive across the level (UNet skip connections). */
  kept: number;
  channels: number;
}

/** UNet resolution levels: level i is the latent size halved i times (stride-2 convs
 *  round up). Up block at level i concatenates the skip (C_i) with the previous block's
 *  output (C_{i+1}) or the block input (C_{i-1}). */
function unetLevels(u: ResolvedUNetConfig, h: number, w: number): Level[] {
  const C = u.blockOut;
  const n = C.length;
  return C.map((c, i) => {
    const cross = u.downTypes[i] === 'CrossAttnDownBlock2D' || u.upTypes[n - 1 - i] === 'CrossAttnUpBlock2D' || i === n - 1;
    return {
      h: Math.ceil(h / 2 ** i),
      w: Math.ceil(w / 2 ** i),
      cin: c + Math.max(C[i + 1] ?? c, C[i - 1] ?? 0),
      attn: cross ? c : 0,
      kept: u.layers[i] + 1,
      channels: c,
    };
  });
}

/** VAE decoder levels: level 0 at the latent size (mid block, attention), each up block
 *  doubling it; level j sees the channels of up block j and of the one before it. */
function vaeLevels(v: AutoencoderKLConfig, h: number, w: number): Level[] {
  const rev = [...v.block_out_channels].reverse();
  return rev.map((c, j) => ({
    h: h * 2 ** j,
    w: w * 2 ** j,
    cin: Math.max(c, rev[j - 1] ?? c),
    attn: j === 0 ? c : 0,
    kept: 0,
    channels: c,
  }));
}

/** Peak device bytes of one generation (weights, UNet activations, VAE decode). */
export function estimateGenerationBytes(model: GenerationModel, s: GenerationSize): number {
  const m = 2 ** (model.vae.block_out_channels.length - 1);
  const rows = 2 * s.batchSize;
  const unet = unetLevels(model.unet, s.height / m, s.width / m);
  const skips = unet.reduce((a, l) => a + l.kept * rows * l.channels * l.h * l.w * EL, 0);
  const unetWork = 4 * Math.max(...unet.map((l) => rows * l.cin * l.h * l.w * EL));
  const vae = vaeLevels(model.vae, s.height / m, s.width / m);
  const vaeWork = 4 * Math.max(...vae.map((l) => s.batchSize * l.cin * l.h * l.w * EL));
  // The image read back to the host, and its RGBA bytes.
  const host = s.batchSize * s.height * s.width * (3 * EL + 4);
  return model.weightBytes + skips + unetWork + vaeWork + host;
}

/** Every adapter limit the size breaks, each as one phrase naming the limit. */
export function sizeProblems(model: GenerationModel, s: GenerationSize, lim: DeviceLimits): string[] {
  const out: string[] = [];
  const m = 2 ** (model.vae.block_out_channels.length - 1);
  const side = lim.maxTextureDimension2D;
  for (const [k, v] of [['height', s.height], ['width', s.width]] as const) {
    if (v > side) out.push(`${k} ${v} is over the adapter's largest image side, maxTextureDimension2D ${side}`);
  }
  const bind = lim.maxStorageBufferBindingSize;
  const budget = bind - lim.minStorageBufferOffsetAlignment - 4;
  const rows = 2 * s.batchSize;
  const where = [
    ...unetLevels(model.unet, s.height / m, s.width / m).map((l, i) => ({ l, name: `UNet level ${i}`, batch: rows })),
    ...vaeLevels(model.vae, s.height / m, s.width / m).map((l, j) => ({ l, name: `VAE decoder level ${j}`, batch: s.batchSize })),
  ];
  for (const { l, name, batch } of where) {
    const band = l.cin * CONV_ROWS * (l.w + CONV_SLACK) * EL;
    if (band > budget) out.push(`${name}: one row band of a ${l.cin}-channel convolution ${l.w} wide takes ${formatBytes(band)}, over maxStorageBufferBindingSize ${formatBytes(bind)}`);
    const tokens = l.h * l.w;
    const qkv = batch * tokens * l.attn * EL;
    if (l.attn && qkv > bind) out.push(`${name}: attention over ${tokens} tokens binds ${formatBytes(qkv)} per q/k/v (batch ${batch}), over maxStorageBufferBindingSize ${formatBytes(bind)}`);
    if (l.attn && name.startsWith('VAE') && batch * tokens * EL > bind) out.push(`${name}: one row of attention scores over ${tokens} tokens exceeds maxStorageBufferBindingSize ${formatBytes(bind)}`);
    const whole = batch * l.cin * tokens * EL;
    if (whole > lim.maxBufferSize) out.push(`${name}: a [${batch}, ${l.cin}, ${l.h}, ${l.w}] activation takes ${formatBytes(whole)}, over maxBufferSize ${formatBytes(lim.maxBufferSize)}`);
  }
  const total = estimateGenerationBytes(model, s);
  if (total > lim.memoryBytes) out.push(`weights and activations need about ${formatBytes(total)}, more than the ${formatBytes(lim.memoryBytes)} of memory this machine has`);
  return out;
}

/** The largest size of the same aspect ratio (sides multiples of `m`) that fits. */
function largestFitting(model: GenerationModel, s: GenerationSize, lim: DeviceLimits, m: number): GenerationSize | null {
  const at = (f: number): GenerationSize => ({
    height: Math.max(m, Math.floor((s.height * f) / m) * m),
    width: Math.max(m, Math.floor((s.width * f) / m) * m),
    batchSize: s.batchSize,
  });
  if (sizeProblems(model, at(0), lim).length) return null;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 40; i++) {
    const mid = (lo + hi) / 2;
    if (sizeProblems(model, at(mid), lim).length) hi = mid;
    else lo = mid;
  }
  return at(lo);
}

/** Throws before any allocation when `s` cannot be generated: InputError for sides that
 *  are not positive multiples of the VAE factor, LimitError (naming the limit and the
 *  largest size that fits) for sizes past the adapter's limits or the memory estimate. */
export function checkGenerationSize(model: GenerationModel, s: GenerationSize, lim: DeviceLimits): void {
  const m = 2 ** (model.vae.block_out_channels.length - 1);
  const bad: string[] = [];
  for (const [k, v] of [['height', s.height], ['width', s.width]] as const) {
    if (!Number.isInteger(v) || v < m || v % m !== 0) bad.push(`${k} ${v} must be a positive multiple of ${m}; try ${Math.max(m, Math.round(v / m) * m)}`);
  }
  if (!Number.isInteger(s.batchSize) || s.batchSize < 1) bad.push(`batch size ${s.batchSize} must be a positive integer`);
  if (bad.length) throw new InputError(`generate: ${bad.join('; ')}`);
  const problems = sizeProblems(model, s, lim);
  if (problems.length === 0) return;
  const fit = largestFitting(model, s, lim, m);
  const hint = fit
    ? `the largest that fits at this aspect ratio is ${fit.height}x${fit.width}${s.batchSize > 1 ? ` (batch ${s.batchSize})` : ''}`
    : `even ${m}x${m} does not fit at batch ${s.batchSize}: use a smaller batch`;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more limit${problems.length > 2 ? 's' : ''})` : '';
  throw new LimitError(`generate: a ${s.height}x${s.width} image (batch ${s.batchSize}) does not fit ${lim.adapterName}: ${problems[0]}${more}; ${hint}`);
}
