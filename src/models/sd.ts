// StableDiffusion: the four parts of an SD 1.x model (prompt tokenizer, CLIP text encoder,
// UNet, VAE) plus its scheduler config, loaded from a diffusers folder or a single-file
// LDM checkpoint (io/sd_weights.ts), or built with deterministic random weights (the
// real SD 1.5 shapes for benchmarks, tiny shapes for CI demos of the whole pipeline).
// Configs: a folder's config.json files when present, otherwise the SD 1.5 defaults
// below (single files carry no configs), each overridable by the caller.
import { join } from 'node:path';
import { EngineError, InputError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { checkTokenizerFolder, openSdWeights } from '../io/sd_weights.js';
import { CLIPTokenizer } from '../io/tokenizer.js';
import { disposeParams, loadWeights, Module, namedParams } from '../nn/module.js';
import { f32ToF16Array } from '../tensor/f16.js';
import { lowbias32 } from '../tensor/hash.js';
import { Tensor } from '../tensor/tensor.js';
import { CLIPTextModel, SD15_TEXT_CONFIG, type CLIPTextConfig } from './clip.js';
import { checkModelDtype, paramDtype, type ModelDtype } from './precision.js';
import { schedulerNameForClass, type SchedulerName } from './schedulers/index.js';
import { SD15_UNET_CONFIG, UNet2DConditionModel, type UNet2DConditionConfig } from './unet/index.js';
import { AutoencoderKL } from './vae/vae.js';
import { SD15_VAE_CONFIG, type AutoencoderKLConfig } from './vae/config.js';

/** runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json. */
export const SD15_SCHEDULER_CONFIG: Record<string, unknown> = {
  _class_name: 'PNDMScheduler',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
};

export interface SdConfigs {
  text_encoder: CLIPTextConfig;
  unet: UNet2DConditionConfig;
  vae: Partial<AutoencoderKLConfig>;
  scheduler: Record<string, unknown>;
}

export const SD15_CONFIGS: SdConfigs = { text_encoder: SD15_TEXT_CONFIG, unet: SD15_UNET_CONFIG, vae: SD15_VAE_CONFIG, scheduler: SD15_SCHEDULER_CONFIG };

/** A few-thousand-parameter SD with every SD 1.x block kind (cross-attention down/up
 *  blocks, plain down/up blocks, the attention mid block, the 8x VAE), for CI. */
export const TINY_CONFIGS: SdConfigs = {
  text_encoder: { ...SD15_TEXT_CONFIG, vocab_size: 1000, hidden_size: 32, intermediate_size: 37, num_hidden_layers: 2, num_attention_heads: 4 },
  unet: {
    ...SD15_UNET_CONFIG,
    block_out_channels: [32, 64],
    down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
    layers_per_block: 1,
    norm_num_groups: 8,
    cross_attention_dim: 32,
    attention_head_dim: 4,
    sample_size: 8,
  },
  vae: { ...SD15_VAE_CONFIG, block_out_channels: [16, 16, 32, 32], layers_per_block: 1, norm_num_groups: 8, sample_size: 64 },
  scheduler: SD15_SCHEDULER_CONFIG,
};

/** Prompt -> CLIP token ids (77 long for SD 1.x: BOS, tokens, EOS, EOS padding). */
export interface PromptTokenizer {
  encodePadded(text: string): number[];
}

/** A vocabulary-free stand-in for tiny models: each whitespace-separated word becomes a
 *  hashed id in [0, vocab - 2); vocab - 2 plays BOS and vocab - 1 EOS (the largest id, so
 *  CLIP's argmax pooling finds it, as with the real vocabulary). Deterministic. */
export class HashTokenizer implements PromptTokenizer {
  constructor(readonly vocabSize: number, readonly maxLength = 77) {
    if (vocabSize < 3) throw new InputError(`HashTokenizer needs a vocabulary of at least 3 ids, got ${vocabSize}`);
  }
  encodePadded(text: string): number[] {
    const bos = this.vocabSize - 2;
    const eos = this.vocabSize - 1;
    const words = text.toLowerCase().split(/\s+/).filter((w) => w.length > 0);
    const ids = words.map((w) => hashString(w) % bos).slice(0, this.maxLength - 2);
    const out = [bos, ...ids, eos];
    while (out.length < this.maxLength) out.push(eos);
    return out;
  }
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return lowbias32(h);
}

/** Fills every Param of `root` with deterministic values: weights uniform in
 *  +-1/sqrt(fan_in) (PyTorch's default Linear/Conv init bound), 1-D `weight`s (norm
 *  scales) 1, biases and embeddings uniform in +-0.02. Element i of a parameter is a hash
 *  of (seed, parameter name, i), so values do not depend on load order; the host fills
 *  chunks of 4M values and uploads them, about as fast as reading a file. f16 weights are
 *  the f32 values rounded to nearest, so an f16 model is the f32 one stored in f16. */
export function initRandomWeights(rt: Runtime, root: Module, seed: number, dtype: ModelDtype = 'f32'): void {
  const CHUNK = 1 << 22;
  const buf = new Float32Array(CHUNK);
  for (const [name, p] of namedParams(root)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const isNormScale = p.shape.length === 1 && name.endsWith('weight');
    const isEmbedding = name.includes('embedding.weight') && !name.includes('time_embedding');
    const bound = p.shape.length >= 2 && !isEmbedding ? 1 / Math.sqrt(n / p.shape[0]) : 0.02;
    const key = lowbias32((seed ^ hashString(name)) >>> 0);
    const t = Tensor.empty(rt, p.shape, dtype, name, 'exact');
    for (let start = 0; start < n; start += CHUNK) {
      const count = Math.min(CHUNK, n - start);
      const out = buf.subarray(0, count);
      if (isNormScale) out.fill(1);
      else for (let i = 0; i < count; i++) out[i] = (lowbias32((key + start + i) >>> 0) * (2 / 4294967296) - 1) * bound;
      t.write(dtype === 'f32' ? out : f32ToF16Array(out), start);
    }
    p.set(t);
  }
}

export interface SdLoadOptions {
  /** The dtype the three models run in (models/precision.ts): f16 stores weights and
   *  activations in f16 (accumulation, norm statistics, softmax and the scheduler stay
   *  f32) and needs the adapter's shader-f16. Default f32. */
  dtype?: ModelDtype;
  /** Prefer *.fp16.safetensors in a diffusers folder. */
  variant?: 'fp16';
  /** Configs that replace the folder's or the SD 1.5 defaults (single files have none). */
  configs?: Partial<SdConfigs>;
  /** A folder with vocab.json + merges.txt, for single files (folders bring tokenizer/). */
  tokenizerDir?: string;
  /** A ready tokenizer (takes precedence over every folder). */
  tokenizer?: PromptTokenizer;
  /** Called with the built models before any weight is read (e.g. an image-size check);
   *  a throw stops the load. */
  beforeWeights?: (models: { textEncoder: CLIPTextModel; unet: UNet2DConditionModel; vae: AutoencoderKL }) => void;
}

/** Builds a model, naming the config's source when the config is refused. */
function built<T>(source: string, make: () => T): T {
  try {
    return make();
  } catch (e) {
    if (e instanceof EngineError) throw new InputError(`${source}: ${e.message}`);
    throw e;
  }
}

export class StableDiffusion {
  constructor(
    readonly rt: Runtime,
    readonly tokenizer: PromptTokenizer,
    readonly textEncoder: CLIPTextModel,
    readonly unet: UNet2DConditionModel,
    readonly vae: AutoencoderKL,
    readonly schedulerConfig: Record<string, unknown>,
  ) {}

  /** Loads a diffusers folder or a single-file LDM .safetensors checkpoint. Every
   *  missing, unexpected or mis-shaped tensor of a component is reported at once. All
   *  three models are built (checking their configs) before any weight is read, and
   *  `beforeWeights` sees them then: the place for checks that need the configs only. */
  static async load(rt: Runtime, path: string, opts: SdLoadOptions = {}): Promise<StableDiffusion> {
    const dtype = opts.dtype ?? 'f32';
    checkModelDtype(rt, dtype, 'StableDiffusion.load');
    const w = await openSdWeights(path, { variant: opts.variant });
    const parts: Module[] = [];
    try {
      const cfg = opts.configs ?? {};
      // Where each config came from, for messages about its values.
      const from = (c: 'unet' | 'vae' | 'text_encoder') =>
        cfg[c] ? `the configs.${c} option` : w.configs[c] ? join(path, c, 'config.json') : `the SD 1.5 default ${c} config`;
      const schedulerConfig = cfg.scheduler ?? w.configs.scheduler ?? SD15_SCHEDULER_CONFIG;
      const tokDir = opts.tokenizerDir ?? w.tokenizerDir;
      if (!opts.tokenizer && !tokDir) {
        throw new InputError(`${path} has no tokenizer/ folder (single-file checkpoints never do): pass a tokenizer folder with vocab.json and merges.txt`);
      }
      const textEncoder = built(from('text_encoder'), () =>
        new CLIPTextModel(cfg.text_encoder ?? (w.configs.text_encoder ? clipConfigFrom(w.configs.text_encoder) : SD15_TEXT_CONFIG)));
      const unet = built(from('unet'), () => new UNet2DConditionModel(cfg.unet ?? (w.configs.unet as UNet2DConditionConfig | undefined) ?? SD15_UNET_CONFIG));
      const vae = built(from('vae'), () => new AutoencoderKL(cfg.vae ?? (w.configs.vae as Partial<AutoencoderKLConfig> | undefined) ?? SD15_VAE_CONFIG));
      opts.beforeWeights?.({ textEncoder, unet, vae });
      if (!opts.tokenizer && opts.tokenizerDir) checkTokenizerFolder(opts.tokenizerDir);
      const tokenizer = opts.tokenizer ?? (await CLIPTokenizer.fromFolder(tokDir as string));
      parts.push(textEncoder);
      // Older transformers exports keep the constant position_ids buffer; it is not a weight.
      await loadWeights(rt, textEncoder, w.sources.text_encoder, { dtype, ignore: (n) => n.endsWith('embeddings.position_ids') });
      parts.push(unet);
      await loadWeights(rt, unet, w.sources.unet, { dtype });
      parts.push(vae);
      await loadWeights(rt, vae, w.sources.vae, { dtype });
      return new StableDiffusion(rt, tokenizer, textEncoder, unet, vae, schedulerConfig);
    } catch (e) {
      for (const p of parts) disposeParams(p);
      throw e;
    } finally {
      await w.close();
    }
  }

  /** An SD with deterministic random weights (`seed`) for the given configs: the real SD
   *  1.5 architecture for benchmarks (SD15_CONFIGS) or TINY_CONFIGS for CI. Without a
   *  tokenizer, prompts are hashed into the text encoder's vocabulary. */
  static random(rt: Runtime, configs: SdConfigs, seed = 0, opts: { dtype?: ModelDtype; tokenizer?: PromptTokenizer } = {}): StableDiffusion {
    const dtype = opts.dtype ?? 'f32';
    checkModelDtype(rt, dtype, 'StableDiffusion.random');
    const textEncoder = new CLIPTextModel(configs.text_encoder);
    const unet = new UNet2DConditionModel(configs.unet);
    const vae = new AutoencoderKL(configs.vae);
    initRandomWeights(rt, textEncoder, seed, dtype);
    initRandomWeights(rt, unet, seed + 1, dtype);
    initRandomWeights(rt, vae, seed + 2, dtype);
    const tokenizer = opts.tokenizer ?? new HashTokenizer(configs.text_encoder.vocab_size, configs.text_encoder.max_position_embeddings);
    return new StableDiffusion(rt, tokenizer, textEncoder, unet, vae, configs.scheduler);
  }

  /** The dtype the models run in (their weights'; inputs and outputs are f32 either way). */
  get dtype(): ModelDtype {
    return paramDtype(this.unet.conv_in.weight);
  }

  /** The scheduler named by the config's _class_name (diffusers' default for the model). */
  get defaultScheduler(): SchedulerName {
    const cls = this.schedulerConfig._class_name;
    return typeof cls === 'string' ? schedulerNameForClass(cls) : 'pndm';
  }

  /** Image sides must be multiples of the VAE's factor (8 for SD 1.x); the UNet handles
   *  latent sides its down path does not halve evenly (as diffusers' upsample_size). */
  get sizeMultiple(): number {
    return this.vae.scaleFactor;
  }

  /** Text states [prompts.length, 77, hidden] (CLIP's last hidden state). */
  encodePrompts(prompts: string[]): Tensor {
    const ids = prompts.map((p) => this.tokenizer.encodePadded(p));
    const out = this.textEncoder.forward(this.rt, ids);
    out.pooled.dispose();
    return out.lastHiddenState;
  }

  dispose(): void {
    disposeParams(this.textEncoder);
    disposeParams(this.unet);
    disposeParams(this.vae);
  }
}

/** The CLIPTextConfig keys of a transformers text_encoder/config.json (absent keys take
 *  the SD 1.5 values). */
export function clipConfigFrom(raw: Record<string, unknown>): CLIPTextConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InputError(`a CLIP text config must be a JSON object of transformers CLIPTextConfig keys, found ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : typeof raw}`);
  }
  const pick = <K extends keyof CLIPTextConfig>(k: K): CLIPTextConfig[K] => (raw[k] ?? SD15_TEXT_CONFIG[k]) as CLIPTextConfig[K];
  return {
    vocab_size: pick('vocab_size'),
    hidden_size: pick('hidden_size'),
    intermediate_size: pick('intermediate_size'),
    num_hidden_layers: pick('num_hidden_layers'),
    num_attention_heads: pick('num_attention_heads'),
    max_position_embeddings: pick('max_position_embeddings'),
    layer_norm_eps: pick('layer_norm_eps'),
    hidden_act: pick('hidden_act'),
  };
}
