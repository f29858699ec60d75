// Grounding modules for a given SD model: the built-in tiny SD (the CLI's `--model tiny`)
// with a random module that fits it (`--grounding tiny`), and trained modules read from a
// checkpoint (`--grounding FILE`: the official state dict as .pth or converted to
// safetensors, names as in the official Segmodule, optionally under one prefix such as
// `module.` or `segmodule.`).
//
// A checkpoint holds weights, not the module's settings. Widths come from the tensors
// (projection widths, embedding and MLP sizes, decoder depth, patch size); the feature
// sizes from the UNet at the image size (the official module at 512 px reads 64/32/16/8
// features and interpolates low/mid/high to twice their size); the attention head count,
// which no tensor shape shows, from safetensors metadata `num_heads` or else the official 8.
import { InputError, WeightError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { loadCheckpoint } from '../io/torch_pickle.js';
import { GROUPS, SD1_GROUNDING_CONFIG, type Group, type GroundingConfig } from '../models/grounding/config.js';
import { Segmodule } from '../models/grounding/segmodule.js';
import { TINY_CONFIGS, type SdConfigs, type StableDiffusion } from '../models/sd.js';
import { disposeParams, loadWeights } from '../nn/module.js';
import { expectedModuleShape, featureLayout } from './grounded/features.js';

/** The built-in tiny SD: TINY_CONFIGS with SD 1.x's four UNet levels (three with
 *  cross-attention), so that its block outputs fall into the grounding module's four
 *  feature groups (latent 8 -> 8, 4, 2, 1). Random weights: its pictures are noise. */
export const BUILTIN_TINY_CONFIGS: SdConfigs = {
  ...TINY_CONFIGS,
  unet: {
    ...TINY_CONFIGS.unet,
    block_out_channels: [8, 16, 16, 16],
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    layers_per_block: 1,
    norm_num_groups: 4,
    attention_head_dim: 2,
  },
};

/** The widths a checkpoint decides (everything but the feature sizes and channels). */
export type GroundingWidths = Pick<GroundingConfig, 'proj_channels' | 'patch_size' | 'embedding_dim' | 'num_heads' | 'num_layers' | 'hidden_dim' | 'mlp_layers'>;

/** Narrow widths for the random module of the built-in tiny model. */
export const TINY_GROUNDING_WIDTHS: GroundingWidths = {
  proj_channels: { low: 4, mid: 4, high: 4, highest: 4 }, patch_size: 4, embedding_dim: 16, num_heads: 2, num_layers: 1, hidden_dim: 32, mlp_layers: 2,
};

/** The image side a model generates by default: the UNet's sample_size times the VAE factor
 *  (512 for SD 1.x, 64 for the built-in tiny model). */
export function defaultImageSize(sd: StableDiffusion): number {
  return (sd.unet.config.sample_size ?? 64) * sd.vae.scaleFactor;
}

/** A module config fitting `sd`'s UNet taps at `size` x `size` pixels, with `widths`. */
export function groundingConfigFor(sd: StableDiffusion, size: number, widths: GroundingWidths): GroundingConfig {
  const f = sd.vae.scaleFactor;
  if (!Number.isInteger(size) || size < f || size % f !== 0) throw new InputError(`grounding: image size ${size} must be a positive multiple of ${f}`);
  const { feature_channels, feature_res } = expectedModuleShape(featureLayout(sd.unet, size / f, size / f));
  const res = Object.fromEntries(GROUPS.map((g) => [g, feature_res[g][0]])) as Record<Group, number>;
  if (res.highest % widths.patch_size !== 0) {
    throw new InputError(`grounding: at ${size} px the finest features are ${res.highest}x${res.highest}, not a multiple of the module's patch size ${widths.patch_size}; choose a size whose latent (size / ${f}) is a multiple of ${widths.patch_size}`);
  }
  return {
    ...SD1_GROUNDING_CONFIG,
    ...widths,
    feature_channels,
    feature_res: res,
    // The official module interpolates low, mid and high features to the next group's size.
    low_feature_size: res.mid,
    mid_feature_size: res.high,
    high_feature_size: res.highest,
    out_size: size,
    context_dim: sd.textEncoder.config.hidden_size,
  };
}

/** A module with random weights (PyTorch-like init, `seed`) fitting `sd` at `size` px. */
export function randomGroundingModule(rt: Runtime, sd: StableDiffusion, size: number, seed = 0, widths = TINY_GROUNDING_WIDTHS): Segmodule {
  const seg = new Segmodule(groundingConfigFor(sd, size, widths));
  seg.initRandom(rt, seed);
  return seg;
}

/** The prefix in front of the module's names: whatever precedes `to_q.weight`. */
function findPrefix(names: string[], path: string): string {
  const hits = names.filter((n) => n.endsWith('to_q.weight') && !n.includes('attn'));
  const prefixes = [...new Set(hits.map((n) => n.slice(0, -'to_q.weight'.length)))];
  if (prefixes.length === 1) return prefixes[0];
  if (prefixes.length === 0) throw new WeightError(`${path} has no 'to_q.weight' tensor, so it is not a grounding module (Segmodule) state dict; give the official grounding checkpoint or one from grounded-sd train`);
  throw new WeightError(`${path} holds several grounding modules (prefixes ${prefixes.map((p) => `'${p}'`).join(', ')}); keep one`);
}

/** Module widths read from a checkpoint's tensor shapes; checks them against `sd`. */
function widthsFrom(shape: (name: string) => readonly number[] | undefined, names: string[], prefix: string, path: string, sd: StableDiffusion, size: number, heads: number): GroundingWidths {
  const need = (name: string): readonly number[] => {
    const s = shape(prefix + name);
    if (!s) throw new WeightError(`${path} has no '${prefix}${name}'; it is not a complete grounding module state dict`);
    return s;
  };
  const count = (part: string) => new Set(names.filter((n) => n.startsWith(prefix + part)).map((n) => n.slice((prefix + part).length).split('.')[0])).size;
  const proj = Object.fromEntries(GROUPS.map((g) => [g, need(`${g}_feature_conv.0.weight`)[0]])) as Record<Group, number>;
  const [E, context] = need('to_q.weight');
  const tokenIn = need('to_k.weight')[1];
  const fused = GROUPS.reduce((a, g) => a + proj[g], 0);
  const patch = Math.round(Math.sqrt(tokenIn / fused));
  const problems: string[] = [];
  if (patch * patch * fused !== tokenIn) problems.push(`to_k.weight takes ${tokenIn} inputs, not ${fused} feature channels times a square patch`);
  if (context !== sd.textEncoder.config.hidden_size) problems.push(`it reads ${context}-wide text embeddings, this model's text encoder gives ${sd.textEncoder.config.hidden_size}`);
  // Channels the UNet's taps give each group (twice the UNet widths: the CFG halves).
  const want = expectedModuleShape(featureLayout(sd.unet, size / sd.vae.scaleFactor, size / sd.vae.scaleFactor)).feature_channels;
  for (const g of GROUPS) {
    const have = need(`${g}_feature_conv.0.weight`)[1];
    const sum = want[g].reduce((a, b) => a + b, 0);
    if (have !== sum) problems.push(`its ${g} features have ${have} channels, this UNet's ${g} taps give ${sum}`);
  }
  if (problems.length) throw new WeightError(`${path} does not fit this model: ${problems.join('; ')}. Use a grounding checkpoint trained for this base model (the official one fits SD 1.x)`);
  if (E % heads !== 0) throw new WeightError(`${path}: embedding width ${E} is not divisible by ${heads} attention heads; store the head count as safetensors metadata 'num_heads'`);
  return {
    proj_channels: proj, patch_size: patch, embedding_dim: E, num_heads: heads,
    num_layers: count('transfromer_decoder.layers.'), hidden_dim: need('transfromer_decoder.layers.0.linear1.weight')[0], mlp_layers: count('mlp.layers.'),
  };
}

export interface LoadedGroundingModule {
  module: Segmodule;
  config: GroundingConfig;
  /** Name prefix the module's tensors had in the file ('' for a bare state dict). */
  prefix: string;
}

/** Reads a grounding module from `path` (safetensors or a torch.save .pth/.ckpt/.pt) and
 *  builds it for `sd` at `size` px. Every mismatch is a WeightError naming the file. */
export async function loadGroundingModule(rt: Runtime, sd: StableDiffusion, path: string, size: number): Promise<LoadedGroundingModule> {
  const src = await loadCheckpoint(path);
  try {
    const names = src.names();
    const prefix = findPrefix(names, path);
    const shapes = new Set(names);
    let heads = SD1_GROUNDING_CONFIG.num_heads;
    if (src.format === 'safetensors') {
      const meta = (await SafetensorsFile.open(path).then(async (f) => {
        try {
          return f.metadata;
        } finally {
          await f.close();
        }
      })) ?? {};
      if (meta.num_heads !== undefined) {
        heads = Number(meta.num_heads);
        if (!Number.isInteger(heads) || heads < 1) throw new WeightError(`${path}: metadata num_heads '${meta.num_heads}' must be a positive integer`);
      }
    }
    const widths = widthsFrom((n) => (shapes.has(n) ? src.shape(n) : undefined), names, prefix, path, sd, size, heads);
    const config = groundingConfigFor(sd, size, widths);
    const module = new Segmodule(config);
    try {
      await loadWeights(rt, module, src, { prefix });
    } catch (e) {
      disposeParams(module);
      throw e;
    }
    return { module, config, prefix };
  } finally {
    await src.close();
  }
}
