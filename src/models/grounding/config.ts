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

/** Checks the sizes the forward relies on; throws InputError naming the field. */
export function validateConfig(c: GroundingConfig): void {
  const bad = (what: string) => {
    throw new InputError(`grounding config: ${what}`);
  };
  if (c.feature_res.highest !== c.high_feature_size) bad(`feature_res.highest (${c.feature_res.highest}) must equal high_feature_size (${c.high_feature_size}): the official module concatenates the highest features without interpolation`);
  if (c.high_feature_size % c.patch_size !== 0) bad(`high_feature_size ${c.high_feature_size} must be a multiple of patch_size ${c.patch_size}`);
  if (c.embedding_dim % c.num_heads !== 0) bad(`embedding_dim ${c.embedding_dim} must be divisible by num_heads ${c.num_heads}`);
  if (c.mlp_layers < 1 || c.num_layers < 1) bad('mlp_layers and num_layers must be at least 1');
  for (const g of ['low', 'mid', 'high', 'highest'] as const) if (!c.feature_channels[g]?.length) bad(`feature_channels.${g} is empty`);
}
