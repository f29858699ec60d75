// The grounding module's inputs from one UNet call (official openaimodel.py:892-934):
// every LDM input block, the middle block and every output block output h [2B, C, h, w]
// of the classifier-free-guidance batch becomes, per image b, cat([h[b], h[B + b]], dim 1)
// [1, 2C, h, w] (unconditional half first; for B = 1 the official reshape to [1, 2C, h, w]),
// appended to the group of its spatial size in forward order. The official code names the
// sizes 8/16/32/64 at 512 px; here the groups are the four distinct tap sizes, largest
// first: highest (the latent size), high, mid, low. Taps, channels and sizes all come from
// the UNet's config, so any SD 1.x-shaped UNet and latent size is grouped the same way.
//
// LDM -> diffusers (/work/shared/golden/grounded_tiny/README.md, "Features"): input block 0
// is conv_in; then per down block one tap per resnet (after its attention) and one for its
// downsampler; the middle block; then per up block one tap per resnet (after its
// attention), the last one of an up block with an upsampler being the upsampler's output.
import { InputError, ShapeError, WeightError } from '../../gpu/errors.js';
import { GROUPS, type Group, type GroundingConfig } from '../../models/grounding/config.js';
import type { UNet2DConditionModel } from '../../models/unet/index.js';
import { concat, slice } from '../../nn/layout.js';
import type { Tensor } from '../../tensor/tensor.js';

/** One UNet output the grounding module reads. */
export interface FeatureTap {
  /** UNet tap name (`input_blocks.3`, `middle_block`, `output_blocks.11`). */
  name: string;
  /** UNet channels (the grouped feature has twice as many). */
  channels: number;
  height: number;
  width: number;
  group: Group;
  /** Position in its group (the order the module's 1x1 projection sees). */
  index: number;
}

/** Spatial size of each UNet level: the latent size, then halved (rounded up, as a
 *  stride-2 3x3 convolution with padding 1 gives) once per downsampler. */
export function levelSizes(unet: UNet2DConditionModel, latentHeight: number, latentWidth: number): Array<[number, number]> {
  const sizes: Array<[number, number]> = [[latentHeight, latentWidth]];
  for (let i = 1; i < unet.resolved.blockOut.length; i++) {
    const [h, w] = sizes[i - 1];
    sizes.push([Math.ceil(h / 2), Math.ceil(w / 2)]);
  }
  return sizes;
}

/** The 25 taps (for SD 1.x) in forward order with their channels, sizes and groups. */
export function featureLayout(unet: UNet2DConditionModel, latentHeight: number, latentWidth: number): FeatureTap[] {
  const c = unet.resolved;
  const n = c.blockOut.length;
  const sizes = levelSizes(unet, latentHeight, latentWidth);
  const taps: Array<Omit<FeatureTap, 'group' | 'index'>> = [];
  const push = (name: string, channels: number, [height, width]: [number, number]) => taps.push({ name, channels, height, width });
  let input = 0;
  push(`input_blocks.${input++}`, c.blockOut[0], sizes[0]);
  unet.down_blocks.forEach((block, i) => {
    for (let j = 0; j < block.resnets.length; j++) push(`input_blocks.${input++}`, c.blockOut[i], sizes[i]);
    if (block.downsamplers) push(`input_blocks.${input++}`, c.blockOut[i], sizes[i + 1]);
  });
  push('middle_block', c.blockOut[n - 1], sizes[n - 1]);
  let output = 0;
  unet.up_blocks.forEach((block, i) => {
    const level = n - 1 - i;
    block.resnets.forEach((_, j) => {
      const upsampled = j === block.resnets.length - 1 && block.upsamplers !== undefined;
      push(`output_blocks.${output++}`, c.blockOut[level], upsampled ? sizes[level - 1] : sizes[level]);
    });
  });
  // Distinct sizes, largest first, name the groups.
  const keys = [...new Set(taps.map((t) => `${t.height}x${t.width}`))];
  const area = (k: string) => k.split('x').map(Number).reduce((a, b) => a * b, 1);
  keys.sort((a, b) => area(b) - area(a));
  if (keys.length !== GROUPS.length) {
    throw new InputError(
      `the grounding module reads UNet features at ${GROUPS.length} resolutions, but this UNet at latent ${latentHeight}x${latentWidth} ` +
        `has taps at ${keys.length} (${keys.join(', ')}); it needs ${GROUPS.length} levels of block_out_channels (SD 1.x has 4)`,
    );
  }
  const byRank: Group[] = ['highest', 'high', 'mid', 'low'];
  const counts: Record<string, number> = {};
  return taps.map((t) => {
    const group = byRank[keys.indexOf(`${t.height}x${t.width}`)];
    const index = counts[group] ?? 0;
    counts[group] = index + 1;
    return { ...t, group, index };
  });
}

/** Per group, the CFG-doubled channel list and size the module must have been built for. */
export function expectedModuleShape(layout: FeatureTap[]): { feature_channels: Record<Group, number[]>; feature_res: Record<Group, [number, number]> } {
  const feature_channels = { low: [], mid: [], high: [], highest: [] } as Record<Group, number[]>;
  const feature_res = {} as Record<Group, [number, number]>;
  for (const t of layout) {
    feature_channels[t.group].push(2 * t.channels);
    feature_res[t.group] = [t.height, t.width];
  }
  return { feature_channels, feature_res };
}

/** Throws a WeightError listing every way the grounding module's config does not fit the
 *  UNet's taps at this latent size or the text encoder's width (`what` names the module). */
export function checkModuleFits(config: GroundingConfig, layout: FeatureTap[], textWidth: number, vaeFactor: number, what: string): void {
  const want = expectedModuleShape(layout);
  const bad: string[] = [];
  const show = (v: number[]) => `[${v.join(', ')}]`;
  for (const g of GROUPS) {
    const have = config.feature_channels[g];
    const need = want.feature_channels[g];
    if (have.length !== need.length || have.some((v, i) => v !== need[i])) bad.push(`feature_channels.${g} is ${show(have)}, the UNet's taps give ${show(need)} (twice the UNet widths)`);
  }
  const [h, w] = want.feature_res.highest;
  if (h !== w) bad.push(`the image is not square (latent ${h}x${w}), but the module's feature sizes are square`);
  else {
    for (const g of GROUPS) {
      const [gh] = want.feature_res[g];
      if (config.feature_res[g] !== gh) bad.push(`feature_res.${g} is ${config.feature_res[g]}, the UNet's ${g} taps are ${gh}x${gh}`);
    }
  }
  if (config.context_dim !== textWidth) bad.push(`context_dim is ${config.context_dim}, the text encoder's width is ${textWidth}`);
  if (bad.length === 0) return;
  const size = config.feature_res.highest * vaeFactor;
  throw new WeightError(
    `${what} does not fit this model: ${bad.join('; ')}. Use a grounding checkpoint trained for this base model` +
      (h === w && config.feature_res.highest !== h ? `, or generate ${size}x${size} images (the size it was built for)` : ''),
  );
}

/** Image b's grouped features from the taps of one UNet call on the CFG batch [2B, ...]. */
export function groupFeatures(layout: FeatureTap[], taps: Map<string, Tensor>, image: number, batch: number): Record<Group, Tensor[]> {
  const out = { low: [], mid: [], high: [], highest: [] } as Record<Group, Tensor[]>;
  for (const t of layout) {
    const x = taps.get(t.name);
    if (!x) throw new ShapeError(`grounded features: the UNet returned no tap ${t.name}`);
    const [rows, C, h, w] = x.shape;
    if (rows !== 2 * batch || C !== t.channels || h !== t.height || w !== t.width) {
      throw new ShapeError(`grounded features: tap ${t.name} is [${x.shape}], expected [${2 * batch}, ${t.channels}, ${t.height}, ${t.width}]`);
    }
    // [uncond_b; cond_b] along channels; batch 1 is the official reshape (no copy).
    out[t.group].push(batch === 1 ? x.reshape([1, 2 * C, h, w]) : concat([slice(x, 0, image, image + 1), slice(x, 0, batch + image, batch + image + 1)], 1));
  }
  return out;
}
