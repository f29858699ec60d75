// Configuration of the grounding module (official `Segmodule`, Li et al. ICCV 2023).
// Field names follow the golden fixtures' manifest `config` so a manifest's config can
// be passed straight in.
import { InputError } from '../../gpu/errors.js';

export type Group = 'low' | 'mid' | 'high' | 'highest';
export const GROUPS: readonly Group[] = ['low', 'mid', 'high', 'highest'];

export interface GroundingConfig {
  /** Channels of every UNet feature tensor per group, in append order (after the CFG concat). */
  feature_channels: Record<Group, number[]>;
  /** Spatial size of each group's features. */
  feature_res: Record<Group, number>;
  /** Bilinear interpolation targets of the low, mid and high paths. */
  low_feature_size: number; mid_feature_size: number; high_feature_size: number;
  /** Output channels of each group's 1x1 projection. */
  proj_channels: Record<Group, number>;
  /** Mask logits are out_size x out_size. */
  out_size: number;
  patch_size: number;
  embedding_dim: number; num_heads: number; num_layers: number; hidden_dim: number;
  context_dim: number; mlp_layers: number;
  bn_eps: number; bn_momentum: number; sn_eps: number; sn_num_itrs: number;
}

/** The official module at SD v1 widths (CFG-doubled UNet channels). */
export const SD1_GROUNDING_CONFIG: GroundingConfig = {
  feature_channels: {
    low: [2560, 2560, 2560, 2560, 2560, 2560],
    mid: [1280, 2560, 2560, 2560, 2560, 2560],
    high: [640, 1280, 1280, 2560, 1280, 1280],
    highest: [640, 640, 640, 1280, 640, 640, 640],
  },
  feature_res: { low: 8, mid: 16, high: 32, highest: 64 },
  low_feature_size: 16, mid_feature_size: 32, high_feature_size: 64,
  proj_channels: { low: 16, mid: 32, high: 64, highest: 128 },
  out_size: 512, patch_size: 4,
  embedding_dim: 512, num_heads: 8, num_layers: 3, hidden_dim: 2048, context_dim: 768, mlp_layers: 3,
  bn_eps: 1e-4, bn_momentum: 0.1, sn_eps: 1e-4, sn_num_itrs: 1,
};

/** Channels of the fused image feature F (the mix blocks' widths, cumulative). */
export function featureDims(c: GroundingConfig): { mid: number; high: number; highest: number } {
  const mid = c.proj_channels.low + c.proj_channels.mid;
  const high = mid + c.proj_channels.high;
  return { mid, high, highest: high + c.proj_channels.highest };
}

const INT_FIELDS = ['low_feature_size', 'mid_feature_size', 'high_feature_size', 'out_size', 'patch_size', 'embedding_dim', 'num_heads',
  'num_layers', 'hidden_dim', 'context_dim', 'mlp_layers', 'sn_num_itrs'] as const;
const POSITIVE_FIELDS = ['bn_eps', 'bn_momentum', 'sn_eps'] as const;

/** Checks the types and sizes the forward relies on; throws InputError naming the field. */
export function validateConfig(c: GroundingConfig): void {
  const bad = (what: string) => {
    throw new InputError(`grounding config: ${what}`);
  };
  const show = (v: unknown) => (v === undefined ? 'undefined' : JSON.stringify(v));
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const posInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v > 0;
  if (!isObject(c)) bad(`expected an object of Segmodule settings, found ${c === null ? 'null' : Array.isArray(c) ? 'an array' : show(c)}`);
  for (const k of INT_FIELDS) if (!posInt(c[k])) bad(`${k} = ${show(c[k])} must be a positive integer`);
  for (const k of POSITIVE_FIELDS) if (!(typeof c[k] === 'number' && c[k] > 0 && Number.isFinite(c[k]))) bad(`${k} = ${show(c[k])} must be a positive number`);
  for (const key of ['feature_channels', 'feature_res', 'proj_channels'] as const) {
    const v = c[key] as unknown;
    if (!isObject(v)) bad(`${key} = ${show(v)} must be an object with low, mid, high and highest entries`);
  }
  for (const g of GROUPS) {
    const ch = c.feature_channels[g] as unknown;
    if (!Array.isArray(ch) || ch.length === 0 || !ch.every(posInt)) bad(`feature_channels.${g} = ${show(ch)} must be a non-empty list of positive integers`);
    if (!posInt(c.feature_res[g])) bad(`feature_res.${g} = ${show(c.feature_res[g])} must be a positive integer`);
    if (!posInt(c.proj_channels[g])) bad(`proj_channels.${g} = ${show(c.proj_channels[g])} must be a positive integer`);
  }
  if (c.feature_res.highest !== c.high_feature_size) bad(`feature_res.highest (${c.feature_res.highest}) must equal high_feature_size (${c.high_feature_size}): the official module concatenates the highest features without interpolation`);
  if (c.high_feature_size % c.patch_size !== 0) bad(`high_feature_size ${c.high_feature_size} must be a multiple of patch_size ${c.patch_size}`);
  if (c.embedding_dim % c.num_heads !== 0) bad(`embedding_dim ${c.embedding_dim} must be divisible by num_heads ${c.num_heads}`);
}
