// UNet2DConditionModel configuration: the keys of diffusers' unet/config.json (v0.25.1),
// checked at construction and resolved into per-block values. Only what SD 1.x uses is
// supported; every other feature is rejected by its key name with the value found.
import { ShapeError } from '../../gpu/errors.js';

export type DownBlockType = 'CrossAttnDownBlock2D' | 'DownBlock2D';
export type UpBlockType = 'CrossAttnUpBlock2D' | 'UpBlock2D';

/** config.json keys (snake_case, as diffusers writes them). Optional keys take diffusers'
 *  defaults; keys that only switch on non-SD-1.x features must be absent, null or off. */
export interface UNet2DConditionConfig {
  sample_size?: number | null;
  in_channels: number;
  out_channels: number;
  center_input_sample?: boolean;
  flip_sin_to_cos?: boolean;
  freq_shift?: number;
  down_block_types: string[];
  mid_block_type?: string | null;
  up_block_types: string[];
  only_cross_attention?: boolean | boolean[];
  block_out_channels: number[];
  layers_per_block?: number | number[];
  downsample_padding?: number;
  mid_block_scale_factor?: number;
  dropout?: number;
  act_fn?: string;
  norm_num_groups?: number | null;
  norm_eps?: number;
  cross_attention_dim?: number | number[];
  transformer_layers_per_block?: number | number[];
  reverse_transformer_layers_per_block?: unknown;
  /** diffusers quirk: the NUMBER of heads per block (head size = channels / heads). */
  attention_head_dim?: number | number[];
  num_attention_heads?: number | number[] | null;
  use_linear_projection?: boolean;
  upcast_attention?: boolean;
  resnet_time_scale_shift?: string;
  resnet_out_scale_factor?: number;
  time_embedding_type?: string;
  time_embedding_dim?: number | null;
  conv_in_kernel?: number;
  conv_out_kernel?: number;
  [key: string]: unknown;
}

/** The real SD 1.5 unet/config.json (runwayml/stable-diffusion-v1-5). */
export const SD15_UNET_CONFIG: UNet2DConditionConfig = {
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
};

/** Per-block values after diffusers' int -> tuple broadcasting. */
export interface ResolvedUNetConfig {
  raw: UNet2DConditionConfig;
  inChannels: number;
  outChannels: number;
  blockOut: number[];
  downTypes: DownBlockType[];
  upTypes: UpBlockType[];
  /** Per down block (index i); up block i uses the reversed lists, the mid block the last entry. */
  layers: number[];
  heads: number[];
  crossDim: number[];
  transformerLayers: number[];
  groups: number;
  eps: number;
  timeProjDim: number;
  timeEmbedDim: number;
  flipSinToCos: boolean;
  freqShift: number;
  centerInput: boolean;
  downsamplePadding: number;
  midScale: number;
  useLinearProjection: boolean;
  convInKernel: number;
  convOutKernel: number;
}

const DOWN_TYPES: readonly string[] = ['CrossAttnDownBlock2D', 'DownBlock2D'];
const UP_TYPES: readonly string[] = ['CrossAttnUpBlock2D', 'UpBlock2D'];

/** Keys that switch on features SD 1.x does not use, with the values that mean "off". */
const OFF_KEYS: Array<[string, unknown[]]> = [
  ['class_embed_type', [null, undefined]],
  ['num_class_embeds', [null, undefined]],
  ['addition_embed_type', [null, undefined]],
  ['addition_time_embed_dim', [null, undefined]],
  ['encoder_hid_dim', [null, undefined]],
  ['encoder_hid_dim_type', [null, undefined]],
  ['time_embedding_act_fn', [null, undefined]],
  ['timestep_post_act', [null, undefined]],
  ['time_cond_proj_dim', [null, undefined]],
  ['cross_attention_norm', [null, undefined]],
  ['reverse_transformer_layers_per_block', [null, undefined]],
  ['dual_cross_attention', [false, undefined]],
  ['class_embeddings_concat', [false, undefined]],
  ['resnet_skip_time_act', [false, undefined]],
  ['attention_type', ['default', undefined]],
  // diffusers 0.25.1 itself raises when num_attention_heads is set (issue #2011 naming).
  ['num_attention_heads', [null, undefined]],
];

const show = (v: unknown) => JSON.stringify(v) ?? String(v);
const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** An int broadcast to every block, or a list with one entry per block. */
function perBlock(c: UNet2DConditionConfig, key: string, fallback: number, n: number, bad: string[]): number[] {
  const v = c[key] ?? fallback;
  const list = typeof v === 'number' ? Array<number>(n).fill(v) : v;
  if (!Array.isArray(list) || list.length !== n || !list.every(isPosInt)) {
    bad.push(`${key} = ${show(v)} must be a positive integer or a list of ${n} positive integers (one per down block)`);
    return Array<number>(n).fill(1);
  }
  return list;
}

/** Checks every key and resolves per-block values; throws one ShapeError listing all problems. */
export function resolveUNetConfig(c: UNet2DConditionConfig): ResolvedUNetConfig {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) {
    throw new ShapeError(`invalid UNet2DConditionModel config: expected a JSON object of diffusers UNet2DConditionModel keys, found ${c === null ? 'null' : Array.isArray(c) ? 'an array' : show(c)}`);
  }
  const bad: string[] = [];
  const blockOut = c.block_out_channels;
  const n = Array.isArray(blockOut) ? blockOut.length : 0;
  if (!Array.isArray(blockOut) || n === 0 || !blockOut.every(isPosInt)) bad.push(`block_out_channels = ${show(blockOut)} must be a non-empty list of positive integers`);
  const down = Array.isArray(c.down_block_types) ? c.down_block_types : [];
  const up = Array.isArray(c.up_block_types) ? c.up_block_types : [];
  if (down.length !== n) bad.push(`down_block_types = ${show(c.down_block_types)} must have one entry per block_out_channels entry (${n})`);
  if (up.length !== n) bad.push(`up_block_types = ${show(c.up_block_types)} must have one entry per block_out_channels entry (${n})`);
  down.forEach((t, i) => {
    if (!DOWN_TYPES.includes(t)) bad.push(`down_block_types[${i}] = ${show(t)} is not an SD 1.x block type (supported: ${DOWN_TYPES.join(', ')})`);
  });
  up.forEach((t, i) => {
    if (!UP_TYPES.includes(t)) bad.push(`up_block_types[${i}] = ${show(t)} is not an SD 1.x block type (supported: ${UP_TYPES.join(', ')})`);
  });
  const mid = c.mid_block_type === undefined ? 'UNetMidBlock2DCrossAttn' : c.mid_block_type;
  if (mid !== 'UNetMidBlock2DCrossAttn') bad.push(`mid_block_type = ${show(mid)} is not supported (SD 1.x uses UNetMidBlock2DCrossAttn)`);
  const shift = c.resnet_time_scale_shift ?? 'default';
  if (shift !== 'default') bad.push(`resnet_time_scale_shift = ${show(shift)} is not supported (only 'default', as in SD 1.x)`);
  const act = c.act_fn ?? 'silu';
  if (act !== 'silu' && act !== 'swish') bad.push(`act_fn = ${show(act)} is not supported (SD 1.x uses 'silu')`);
  const tet = c.time_embedding_type ?? 'positional';
  if (tet !== 'positional') bad.push(`time_embedding_type = ${show(tet)} is not supported (SD 1.x uses 'positional')`);
  const oca = c.only_cross_attention ?? false;
  if (oca !== false && !(Array.isArray(oca) && oca.every((x) => x === false))) bad.push(`only_cross_attention = ${show(oca)} is not supported (SD 1.x uses false)`);
  for (const [key, off] of OFF_KEYS) {
    if (!off.includes(c[key])) bad.push(`${key} = ${show(c[key])} is not supported (SD 1.x leaves it ${show(off[0])})`);
  }
  for (const key of ['in_channels', 'out_channels'] as const) if (!isPosInt(c[key])) bad.push(`${key} = ${show(c[key])} must be a positive integer`);
  const groups = c.norm_num_groups === undefined ? 32 : c.norm_num_groups;
  if (!isPosInt(groups)) bad.push(`norm_num_groups = ${show(groups)} must be a positive integer (SD 1.x uses 32)`);
  else if (Array.isArray(blockOut) && blockOut.some((ch) => ch % groups !== 0)) {
    bad.push(`block_out_channels = ${show(blockOut)} must all be divisible by norm_num_groups = ${groups} (GroupNorm)`);
  }
  const eps = c.norm_eps ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) bad.push(`norm_eps = ${show(eps)} must be a positive number`);
  const pad = c.downsample_padding ?? 1;
  if (pad !== 0 && pad !== 1) bad.push(`downsample_padding = ${show(pad)} must be 0 or 1`);
  const midScale = c.mid_block_scale_factor ?? 1;
  if (typeof midScale !== 'number' || !(midScale > 0)) bad.push(`mid_block_scale_factor = ${show(midScale)} must be a positive number`);
  const kIn = c.conv_in_kernel ?? 3;
  const kOut = c.conv_out_kernel ?? 3;
  if (!isPosInt(kIn) || kIn % 2 === 0) bad.push(`conv_in_kernel = ${show(kIn)} must be an odd positive integer`);
  if (!isPosInt(kOut) || kOut % 2 === 0) bad.push(`conv_out_kernel = ${show(kOut)} must be an odd positive integer`);
  const freqShift = c.freq_shift ?? 0;
  if (typeof freqShift !== 'number') bad.push(`freq_shift = ${show(freqShift)} must be a number`);
  const ted = c.time_embedding_dim ?? null;
  if (ted !== null && !isPosInt(ted)) bad.push(`time_embedding_dim = ${show(ted)} must be a positive integer or null`);

  const layers = perBlock(c, 'layers_per_block', 2, n, bad);
  const heads = perBlock(c, 'attention_head_dim', 8, n, bad);
  const crossDim = perBlock(c, 'cross_attention_dim', 1280, n, bad);
  const transformerLayers = perBlock(c, 'transformer_layers_per_block', 1, n, bad);
  if (Array.isArray(blockOut) && heads.length === n) {
    blockOut.forEach((ch, i) => {
      if (heads[i] > ch) bad.push(`attention_head_dim[${i}] = ${heads[i]} heads exceeds the ${ch} channels of block ${i} (it is the number of heads in diffusers)`);
    });
  }
  if (bad.length) throw new ShapeError(`invalid UNet2DConditionModel config:\n  ${bad.join('\n  ')}`);
  const c0 = blockOut[0];
  return {
    raw: c,
    inChannels: c.in_channels,
    outChannels: c.out_channels,
    blockOut: [...blockOut],
    downTypes: down as DownBlockType[],
    upTypes: up as UpBlockType[],
    layers,
    heads,
    crossDim,
    transformerLayers,
    groups: groups as number,
    eps,
    timeProjDim: c0,
    timeEmbedDim: ted ?? c0 * 4,
    flipSinToCos: c.flip_sin_to_cos ?? true,
    freqShift,
    centerInput: c.center_input_sample ?? false,
    downsamplePadding: pad,
    midScale,
    useLinearProjection: c.use_linear_projection ?? false,
    convInKernel: kIn,
    convOutKernel: kOut,
  };
}
