// DAAM (castorini/daam, commit 09564e0; Tang et al., "What the DAAM", ACL 2023), the
// paper's attention baseline, on our UNet:
// - layers: attn2 of every transformer block in the down and up blocks, not the mid block
//   (hook.py:110-127), listed in DAAM's location order (up blocks first, then down); maps
//   of factor 8 (latent/8 resolution) are skipped as trace.py:289 does (SD 1.x hooks none);
// - capture: each UNet call hands the per-head probabilities softmax(q k^T / sqrt(d)) of
//   the conditional rows (trace.py:233-244) to the accumulator, which sums them over the
//   denoising steps on the GPU (heatmap.py:153-156): one buffer [B, heads, h*w, 77] per
//   layer, nothing read back per step;
// - aggregation (trace.py:111-127): per (layer, head) the [77, h, w] map is resized
//   bicubically to the latent size (DAAM fixes 64x64, the latent of 512 px SD; here the
//   run's latent size) and clamped at 0; the mean over all (layer, head); token positions
//   0 .. n_keep-1 kept (n_keep = prompt tokens + 2: BOS, the tokens, the first EOS);
// - words (utils.py:73-91, heatmap.py:77-93, 121-123): the mean of the token maps at the
//   word's merge indices (grounded/prompt.ts), bicubic to the image size, min-max normalised
//   with eps 1e-8, mask = map > 0.4.
// Cost: the fused attention kernel only averages probabilities over heads, so the per-head
// maps come from a separate matmul + softmax per hooked layer (models/layers/attention.ts,
// `headProbs`) on the conditional rows only; its [B, heads, h*w, 77] scores are small
// (77 keys). At SD 1.x 512 px, per image and step: 15 layers, 2 * 8 * hw * 77 * d FLOPs each
// (1.8 GFLOP in all, well under 1% of the batch-2 UNet call), transient tensors up to
// 10 MB (64x64 layers), and 66 MB of accumulators held for the whole run.
// Differences, on purpose: maps are per image (DAAM on a batch of B > 1 treats the B
// conditional rows as B*heads "heads" and averages the images together), the word map is
// resized to (H, W) (DAAM passes PIL's (W, H), the same for square images), and the latent
// size need not be 64.
import { ShapeError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { CrossAttentionSink, UNet2DConditionModel } from '../models/unet/index.js';
import { bicubic } from '../nn/bicubic.js';
import { add, relu, scale } from '../nn/elementwise.js';
import { permute, slice } from '../nn/layout.js';
import { sum } from '../nn/reduce.js';
import { keep, scope } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { levelSizes } from './grounded/features.js';

/** DAAM's default mask threshold (heatmap.py:85-86, utils.py:39-41). */
export const DAAM_THRESHOLD = 0.4;

/** One hooked cross-attention layer. */
export interface DaamLayer {
  /** Module path of the attn2, e.g. `up_blocks.1.attentions.0.transformer_blocks.0.attn2`. */
  path: string;
  heads: number;
  /** Spatial size of its queries (h * w tokens, row-major). */
  height: number;
  width: number;
  /** DAAM's shape factor floor(sqrt(latent_hw / (h * w))). */
  factor: number;
}

/** The layers DAAM hooks in this UNet at this latent size, in DAAM's order. */
export function daamLayers(unet: UNet2DConditionModel, latentHeight: number, latentWidth: number): DaamLayer[] {
  const c = unet.resolved;
  const n = c.blockOut.length;
  const sizes = levelSizes(unet, latentHeight, latentWidth);
  const out: DaamLayer[] = [];
  const add = (kind: 'up_blocks' | 'down_blocks', i: number, level: number, count: number) => {
    const [h, w] = sizes[level];
    const factor = Math.floor(Math.sqrt(Math.floor((latentHeight * latentWidth) / (h * w))));
    if (factor === 8) return;
    for (let a = 0; a < count; a++) {
      for (let t = 0; t < c.transformerLayers[level]; t++) {
        out.push({ path: `${kind}.${i}.attentions.${a}.transformer_blocks.${t}.attn2`, heads: c.heads[level], height: h, width: w, factor });
      }
    }
  };
  unet.up_blocks.forEach((b, i) => b.attentions && add('up_blocks', i, n - 1 - i, b.attentions.length));
  unet.down_blocks.forEach((b, i) => b.attentions && add('down_blocks', i, i, b.attentions.length));
  return out;
}

/**
 * Sums the per-head cross-attention probabilities of the conditional rows over every UNet
 * call it is passed to (as the UNet forward's `crossAttentionSink`). The CFG batch is
 * [uncond (B rows); cond (B rows)], so it asks for rows B .. 2B-1. Owns one GPU buffer
 * per layer until dispose().
 */
export class DaamAccumulator implements CrossAttentionSink {
  readonly rows: readonly [number, number];
  /** UNet calls seen (denoising steps). */
  calls = 0;
  private readonly layers: Map<string, DaamLayer>;
  private readonly sums = new Map<string, Tensor>();

  constructor(readonly layerList: DaamLayer[], readonly batch: number) {
    this.rows = [batch, 2 * batch];
    this.layers = new Map(layerList.map((l) => [l.path, l]));
  }

  wants(path: string): boolean {
    return this.layers.has(path);
  }

  /** probs [B, heads, h*w, Lk] of one layer in one call (valid during the call only). */
  receive(path: string, probs: Tensor): void {
    const l = this.layers.get(path);
    if (!l) return;
    const [b, heads, q] = probs.shape;
    if (probs.shape.length !== 4 || b !== this.batch || heads !== l.heads || q !== l.height * l.width) {
      throw new ShapeError(`DAAM: ${path} gave probabilities [${probs.shape}], expected [${this.batch}, ${l.heads}, ${l.height * l.width}, tokens]`);
    }
    const prev = this.sums.get(path);
    this.sums.set(path, keep(prev ? add(prev, probs) : probs));
    prev?.dispose();
    if (path === this.layerList[0].path) this.calls++;
  }

  /** Image `image`'s summed maps of one layer, [heads, nKeep, h, w] (DAAM's per-head
   *  [77, h, w] maps, first nKeep tokens). */
  layerSum(path: string, image: number, nKeep: number): Tensor {
    const l = this.layers.get(path);
    const s = this.sums.get(path);
    if (!l || !s) throw new ShapeError(`DAAM: no maps were recorded for ${path}; run the UNet with this accumulator as its crossAttentionSink`);
    return scope(() => {
      const tokens = s.shape[3];
      const x = slice(s, 0, image, image + 1).reshape([l.heads, l.height * l.width, tokens]);
      return slice(permute(x, [0, 2, 1]), 1, 0, nKeep).reshape([l.heads, nKeep, l.height, l.width]);
    });
  }

  /** DAAM's global token maps of one image, [nKeep, latentHeight, latentWidth]. */
  tokenMaps(image: number, nKeep: number, latentHeight: number, latentWidth: number): Tensor {
    if (this.sums.size === 0) throw new ShapeError('DAAM: no maps were recorded; run the UNet with this accumulator as its crossAttentionSink');
    return scope(() => {
      let total: Tensor | undefined;
      let count = 0;
      for (const l of this.layerList) {
        const up = relu(bicubic(this.layerSum(l.path, image, nKeep), { height: latentHeight, width: latentWidth }));
        const s = sum(up, 0);
        total = total ? add(total, s) : s;
        count += l.heads;
      }
      return scale(total as Tensor, 1 / count);
    });
  }

  dispose(): void {
    for (const t of this.sums.values()) t.dispose();
    this.sums.clear();
  }
}

/** One word's DAAM result. */
export interface DaamWordMap {
  word: string;
  /** Token positions averaged (BOS = 0), as DAAM's merge_idxs. */
  mergeIndices: number[];
  /** The word map at the latent size, [latentHeight * latentWidth] (not normalised). */
  latent: Float32Array;
  /** Resized to the image and min-max normalised to [0, 1], [height * width]. */
  heatmap: Float32Array;
  /** heatmap > threshold, 1 inside, [height * width]. */
  mask: Uint8Array;
}

/** Word maps from token maps [nKeep, lh, lw] (read back) for words given by their merge
 *  indices (each < nKeep); one bicubic call for all words. */
export async function daamWordMaps(
  rt: Runtime,
  tokenMaps: Float32Array,
  latent: readonly [number, number],
  image: readonly [number, number],
  words: Array<{ word: string; mergeIndices: number[] }>,
  threshold = DAAM_THRESHOLD,
): Promise<DaamWordMap[]> {
  if (words.length === 0) return [];
  const [lh, lw] = latent;
  const [H, W] = image;
  const plane = lh * lw;
  const latents = words.map(({ word, mergeIndices }) => {
    if (mergeIndices.length === 0 || mergeIndices.some((i) => (i + 1) * plane > tokenMaps.length)) {
      throw new ShapeError(`DAAM: word '${word}' has token indices [${mergeIndices}] outside the ${tokenMaps.length / plane} token maps`);
    }
    const m = new Float32Array(plane);
    for (const i of mergeIndices) for (let p = 0; p < plane; p++) m[p] += tokenMaps[i * plane + p];
    for (let p = 0; p < plane; p++) m[p] /= mergeIndices.length;
    return m;
  });
  const stacked = new Float32Array(words.length * plane);
  latents.forEach((m, k) => stacked.set(m, k * plane));
  const up = scope(() => bicubic(Tensor.from(rt, stacked, [words.length, 1, lh, lw]), { height: H, width: W }));
  let resized: Float32Array;
  try {
    resized = await up.toArray();
  } finally {
    up.dispose();
  }
  return words.map(({ word, mergeIndices }, k) => {
    const img = resized.subarray(k * H * W, (k + 1) * H * W);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of img) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const den = Math.fround(Math.fround(hi - lo) + 1e-8);
    const heatmap = Float32Array.from(img, (v) => Math.fround(v - lo) / den);
    const mask = Uint8Array.from(heatmap, (v) => (v > threshold ? 1 : 0));
    return { word, mergeIndices, latent: latents[k], heatmap, mask };
  });
}
