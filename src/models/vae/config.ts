// AutoencoderKL configuration: the keys of diffusers' vae/config.json (v0.25.1), with
// diffusers' defaults for absent keys, checked at construction. Only the SD 1.x VAE
// structure is supported (DownEncoderBlock2D / UpDecoderBlock2D, SiLU, group norm);
// anything else is rejected by name with the value found.
import { ShapeError } from '../../gpu/errors.js';

/** config.json keys (snake_case, as diffusers writes them). */
export interface AutoencoderKLConfig {
  in_channels: number;
  out_channels: number;
  down_block_types: string[];
  up_block_types: string[];
  block_out_channels: number[];
  layers_per_block: number;
  act_fn: string;
  latent_channels: number;
  norm_num_groups: number;
  sample_size: number;
  /** Not applied by encode/decode: pipelines multiply encoder samples by it and divide
   *  latents by it before decoding. */
  scaling_factor: number;
  force_upcast?: boolean;
  [key: string]: unknown;
}

/** The real SD 1.5 vae/config.json (runwayml/stable-diffusion-v1-5). */
export const SD15_VAE_CONFIG: AutoencoderKLConfig = {
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 512,
  scaling_factor: 0.18215,
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
};

/** AutoencoderKL.__init__ defaults (diffusers v0.25.1). */
const DEFAULTS: AutoencoderKLConfig = {
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D'],
  block_out_channels: [64],
  layers_per_block: 1,
  act_fn: 'silu',
  latent_channels: 4,
  norm_num_groups: 32,
  sample_size: 32,
  scaling_factor: 0.18215,
  force_upcast: true,
};

/** Keys of newer diffusers versions that switch on features SD 1.x does not have; they
 *  must be absent or hold the value that means "off". */
const OFF_SWITCHES: Record<string, unknown> = {
  use_quant_conv: true,
  use_post_quant_conv: true,
  mid_block_add_attention: true,
  latents_mean: null,
  latents_std: null,
};

/** The config with defaults filled in, checked; throws a ShapeError listing every bad value. */
export function vaeConfig(raw: Partial<AutoencoderKLConfig>): AutoencoderKLConfig {
  // Spreading null or an array would quietly give the defaults (or numbered keys).
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ShapeError(`invalid AutoencoderKL config: expected a JSON object of diffusers AutoencoderKL keys, found ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : JSON.stringify(raw)}`);
  }
  const c = { ...DEFAULTS, ...raw } as AutoencoderKLConfig;
  const bad: string[] = [];
  const positiveInt = (k: string, v: unknown) => {
    if (!Number.isInteger(v) || (v as number) <= 0) bad.push(`${k} = ${JSON.stringify(v)} must be a positive integer`);
  };
  for (const k of ['in_channels', 'out_channels', 'layers_per_block', 'latent_channels', 'norm_num_groups'] as const) positiveInt(k, c[k]);
  const boc = c.block_out_channels;
  if (!Array.isArray(boc) || boc.length === 0) bad.push(`block_out_channels = ${JSON.stringify(boc)} must be a non-empty list`);
  else {
    boc.forEach((ch, i) => positiveInt(`block_out_channels[${i}]`, ch));
    const g = c.norm_num_groups;
    if (Number.isInteger(g) && g > 0) {
      const uneven = boc.filter((ch) => Number.isInteger(ch) && ch % g !== 0);
      if (uneven.length) bad.push(`block_out_channels ${JSON.stringify(boc)} must all be divisible by norm_num_groups ${g} (found ${uneven.join(', ')})`);
    }
  }
  for (const [key, want] of [['down_block_types', 'DownEncoderBlock2D'], ['up_block_types', 'UpDecoderBlock2D']] as const) {
    const types = c[key];
    if (!Array.isArray(types)) {
      bad.push(`${key} = ${JSON.stringify(types)} must be a list`);
      continue;
    }
    if (Array.isArray(boc) && types.length !== boc.length) bad.push(`${key} has ${types.length} entries but block_out_channels has ${boc.length}`);
    types.forEach((t, i) => {
      if (t !== want) bad.push(`${key}[${i}] = '${t}' is not supported (only ${want}, the SD 1.x VAE block)`);
    });
  }
  if (c.act_fn !== 'silu') bad.push(`act_fn = '${c.act_fn}' is not supported (only silu)`);
  if (typeof c.scaling_factor !== 'number' || !(c.scaling_factor > 0)) bad.push(`scaling_factor = ${JSON.stringify(c.scaling_factor)} must be a positive number`);
  for (const [k, off] of Object.entries(OFF_SWITCHES)) {
    const v = raw[k];
    if (v !== undefined && v !== off) bad.push(`${k} = ${JSON.stringify(v)} is not supported (SD 1.x uses ${JSON.stringify(off)})`);
  }
  if (bad.length) throw new ShapeError(`invalid AutoencoderKL config: ${bad.join('; ')}`);
  return c;
}
