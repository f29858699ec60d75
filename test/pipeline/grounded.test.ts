// Grounded generation: prompt templates and their errors, DAAM's word search, class
// embeddings against a host mean of the text encoder's rows, the feature layout and
// grouping (tiny UNet and the grounded_tiny manifest's own tap table), the DAAM
// accumulator against a float64 bicubic reference, per-head probabilities against the
// head-averaged kernel, and generateGrounded end to end on a random 4-level tiny SD with a
// matching random grounding module (shapes, masks = logits > 0, determinism, batches,
// official-mode buffers, errors). The fixture's numbers are checked by the parity test.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError, WeightError } from '../../src/gpu/errors.js';
import { CLIPTokenizer } from '../../src/io/tokenizer.js';
import type { GroundingConfig } from '../../src/models/grounding/config.js';
import { Segmodule } from '../../src/models/grounding/segmodule.js';
import { StableDiffusion, TINY_CONFIGS, type SdConfigs } from '../../src/models/sd.js';
import { UNet2DConditionModel, type CrossAttentionSink, type UNet2DConditionConfig } from '../../src/models/unet/index.js';
import { namedParams } from '../../src/nn/module.js';
import { DaamAccumulator, daamLayers, type DaamLayer } from '../../src/pipeline/daam.js';
import {
  classEmbeddings, classesFromPrompt, expectedModuleShape, featureLayout, generateGrounded, groupFeatures, locateClasses, promptWindow,
  restoreGroundingState, snapshotGroundingState, tokenStrings, wordMergeIndices, type GroundedOptions,
} from '../../src/pipeline/grounded.js';
import { maskBandActual } from '../../src/pipeline/parity/grounded.js';
import { bicubicRef } from '../../src/ref/bicubic.js';
import { keep, scope } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { expectClose, goldenDir, randomArray, runtime } from '../helpers.js';

/** TINY_CONFIGS with SD 1.x's four UNet levels (three cross-attention), so the taps fall
 *  into the grounding module's four groups: latent 8 -> 8, 4, 2, 1. */
const TINY4: SdConfigs = {
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
const SIZE = 64;

/** A narrow grounding module whose widths and sizes follow the UNet's taps. */
function groundingConfigFor(sd: StableDiffusion, size: number): GroundingConfig {
  const { feature_channels, feature_res } = expectedModuleShape(featureLayout(sd.unet, size / 8, size / 8));
  const res = { low: feature_res.low[0], mid: feature_res.mid[0], high: feature_res.high[0], highest: feature_res.highest[0] };
  return {
    feature_channels, feature_res: res, low_feature_size: res.mid, mid_feature_size: res.high, high_feature_size: res.highest,
    proj_channels: { low: 4, mid: 4, high: 4, highest: 4 }, out_size: size, patch_size: 4,
    embedding_dim: 16, num_heads: 2, num_layers: 1, hidden_dim: 32, context_dim: sd.textEncoder.config.hidden_size, mlp_layers: 2,
    bn_eps: 1e-4, bn_momentum: 0.1, sn_eps: 1e-4, sn_num_itrs: 1,
  };
}

async function tinyModels() {
  const rt = await runtime();
  const sd = StableDiffusion.random(rt, TINY4, 3);
  const seg = new Segmodule(groundingConfigFor(sd, SIZE));
  seg.initRandom(rt, 4);
  return { rt, sd, seg };
}

describe('prompt templates and word search', () => {
  it('reads the classes of the paper templates, in the prompt spelling', () => {
    expect(classesFromPrompt('a photograph of a cat')).toEqual(['cat']);
    expect(classesFromPrompt('a photograph of a cat and a tvmonitor')).toEqual(['cat', 'tvmonitor']);
    expect(classesFromPrompt('  A photograph of an Apple and a  potted plant. ')).toEqual(['Apple', 'potted plant']);
    for (const bad of ['a cat on a mat', 'a photograph of a', 'photograph of a cat']) {
      expect(() => classesFromPrompt(bad)).toThrow(InputError);
      expect(() => classesFromPrompt(bad)).toThrow(/pass the class names explicitly with the classes option/);
    }
  });

  it('finds every occurrence, word-pieces included, offset by BOS', () => {
    const prompt = ['a</w>', 'photograph</w>', 'of</w>', 'a</w>', 'cat</w>', 'and</w>', 'a</w>', 'tv', 'monitor</w>'];
    expect(wordMergeIndices(prompt, ['a</w>'])).toEqual([1, 4, 7]);
    expect(wordMergeIndices(prompt, ['tv', 'monitor</w>'])).toEqual([8, 9]);
    expect(wordMergeIndices(prompt, ['monitor</w>'])).toEqual([9]);
    expect(wordMergeIndices(prompt, ['dog</w>'])).toEqual([]);
    // `</w>` is dropped on both sides, so a word matches inside a longer one's pieces.
    expect(wordMergeIndices(['potted</w>', 'plant</w>', 'a</w>', 'plant</w>'], ['plant</w>'])).toEqual([2, 4]);
  });

  const tokDir = goldenDir('tokenizer');
  it.skipIf(!tokDir)('matches the grounded_tiny manifest with the real CLIP tokenizer', async () => {
    const g = goldenDir('grounded_tiny');
    if (!g || !tokDir) return;
    const m = JSON.parse(readFileSync(join(g, 'manifest.json'), 'utf8')) as {
      prompt: string; tokenizer: { prompt_tokens: Record<string, string[]> }; daam: { words: Array<{ word: string; merge_idxs: number[] }> };
    };
    const tok = await CLIPTokenizer.fromFolder(tokDir);
    for (const [text, tokens] of Object.entries(m.tokenizer.prompt_tokens)) expect(tokenStrings(tok, text)).toEqual(tokens);
    const promptTokens = tokenStrings(tok, m.prompt.toLowerCase());
    for (const w of m.daam.words) expect(wordMergeIndices(promptTokens, tokenStrings(tok, w.word))).toEqual(w.merge_idxs);
  });

  it('keeps a 77-token window, names what was cut, and refuses classes outside it', async () => {
    const { sd } = await tinyModels();
    const words = ['a', 'photograph', 'of', 'a', 'cat', ...Array.from({ length: 75 }, (_, i) => `w${i}`), 'dog'];
    const w = promptWindow(sd.tokenizer, words.join(' '), 77);
    expect(w.kept).toBe(75);
    expect(w.truncated).toBe('w70 w71 w72 w73 w74 dog');
    expect(locateClasses(sd.tokenizer, w, ['cat'], 77)).toEqual([[5]]);
    expect(() => locateClasses(sd.tokenizer, w, ['dog'], 77)).toThrow(/class 'dog' only occurs after token 75.*77-token limit/);
    expect(() => locateClasses(sd.tokenizer, w, ['horse'], 77)).toThrow(/class 'horse' does not occur in the prompt/);
    expect(() => locateClasses(sd.tokenizer, w, [' '], 77)).toThrow(/is empty/);
  });
});

describe('class embeddings', () => {
  it('average the rows of a multi-token class (host mean of the encoder output)', async () => {
    const { rt, sd } = await tinyModels();
    const te = await classEmbeddings(sd, ['potted plant', 'cat']).toArray();
    const D = sd.textEncoder.config.hidden_size;
    expect(te.length).toBe(2 * D);
    const states = async (q: string) => {
      const out = sd.textEncoder.forward(rt, [sd.tokenizer.encodePadded(q)]);
      const a = await out.lastHiddenState.toArray();
      out.lastHiddenState.dispose();
      out.pooled.dispose();
      return a;
    };
    const s1 = await states('a photograph of a potted plant');
    const ref1 = Array.from({ length: D }, (_, d) => (s1[5 * D + d] + s1[6 * D + d]) / 2);
    const s2 = await states('a photograph of a cat');
    expectClose(te.subarray(0, D), ref1, { label: 'potted plant', relL2: 1e-6 });
    expect(Array.from(te.subarray(D))).toEqual(Array.from(s2.subarray(5 * D, 6 * D)));
  });
});

describe('feature layout and grouping', () => {
  it('groups a tiny 4-level UNet by size, in forward order', async () => {
    const { sd } = await tinyModels();
    const layout = featureLayout(sd.unet, 8, 8);
    expect(layout.map((t) => t.name)).toEqual([...Array.from({ length: 8 }, (_, i) => `input_blocks.${i}`), 'middle_block', ...Array.from({ length: 8 }, (_, i) => `output_blocks.${i}`)]);
    const groups = (g: string) => layout.filter((t) => t.group === g).map((t) => `${t.name}:${t.channels}@${t.height}`);
    expect(groups('highest')).toEqual(['input_blocks.0:8@8', 'input_blocks.1:8@8', 'output_blocks.5:16@8', 'output_blocks.6:8@8', 'output_blocks.7:8@8']);
    expect(groups('high')).toEqual(['input_blocks.2:8@4', 'input_blocks.3:16@4', 'output_blocks.3:16@4', 'output_blocks.4:16@4']);
    expect(groups('mid')).toEqual(['input_blocks.4:16@2', 'input_blocks.5:16@2', 'output_blocks.1:16@2', 'output_blocks.2:16@2']);
    expect(groups('low')).toEqual(['input_blocks.6:16@1', 'input_blocks.7:16@1', 'middle_block:16@1', 'output_blocks.0:16@1']);
    expect(layout.filter((t) => t.group === 'high').map((t) => t.index)).toEqual([0, 1, 2, 3]);
    expect(expectedModuleShape(layout).feature_channels.highest).toEqual([16, 16, 32, 16, 16]);
    // The 2-level TINY_CONFIGS UNet has two sizes only: named in the error.
    expect(() => featureLayout(new UNet2DConditionModel(TINY_CONFIGS.unet), 8, 8)).toThrow(/at 4 resolutions.*has taps at 2 \(8x8, 4x4\)/);
  });

  const g = goldenDir('grounded_tiny');
  it.skipIf(!g)('reproduces the grounded_tiny manifest tap table from the UNet config', () => {
    if (!g) return;
    const m = JSON.parse(readFileSync(join(g, 'manifest.json'), 'utf8')) as {
      latent_size: [number, number]; models: { unet: { config: UNet2DConditionConfig } };
      unet_taps: Array<{ ldm: string; unet_channels: number; spatial: [number, number]; group: string; index_in_group: number; feature_channels: number }>;
    };
    const layout = featureLayout(new UNet2DConditionModel(m.models.unet.config), ...m.latent_size);
    expect(layout.map((t) => [t.name, t.channels, t.height, t.width, t.group, t.index])).toEqual(
      m.unet_taps.map((t) => [t.ldm, t.unet_channels, t.spatial[0], t.spatial[1], t.group, t.index_in_group]),
    );
  });

  it('puts image b as cat([uncond_b, cond_b]) on the channel axis', async () => {
    const rt = await runtime();
    const layout = [{ name: 'x', channels: 3, height: 2, width: 2, group: 'low' as const, index: 0 }];
    const B = 2;
    const data = randomArray(2 * B * 3 * 4, 7);
    const taps = new Map([['x', Tensor.from(rt, data, [2 * B, 3, 2, 2])]]);
    const per = 12;
    for (const b of [0, 1]) {
      const f = groupFeatures(layout, taps, b, B).low[0];
      expect(f.shape).toEqual([1, 6, 2, 2]);
      const ref = [...data.subarray(b * per, (b + 1) * per), ...data.subarray((B + b) * per, (B + b + 1) * per)];
      expect(Array.from(await f.toArray())).toEqual(ref);
      f.dispose();
    }
    expect(() => groupFeatures(layout, taps, 0, 3)).toThrow(/tap x is \[4,3,2,2\], expected \[6, 3, 2, 2\]/);
    taps.get('x')?.dispose();
  });
});

describe('DAAM', () => {
  it('sums the conditional rows per head over calls and aggregates like the float64 reference', async () => {
    const rt = await runtime();
    const layers: DaamLayer[] = [
      { path: 'a', heads: 2, height: 2, width: 2, factor: 2 },
      { path: 'b', heads: 1, height: 4, width: 4, factor: 1 },
    ];
    const B = 2;
    const Lk = 5;
    const acc = new DaamAccumulator(layers, B);
    expect(acc.rows).toEqual([2, 4]);
    const host = new Map<string, Float64Array>();
    for (let call = 0; call < 2; call++) {
      for (const [k, l] of layers.entries()) {
        const n = B * l.heads * l.height * l.width * Lk;
        const p = randomArray(n, 10 * call + k, 0, 1);
        const sum = host.get(l.path) ?? new Float64Array(n);
        p.forEach((v, i) => (sum[i] += v));
        host.set(l.path, sum);
        scope(() => acc.receive(l.path, Tensor.from(rt, p, [B, l.heads, l.height * l.width, Lk])));
      }
    }
    expect(acc.calls).toBe(2);
    const image = 1;
    const nKeep = 3;
    const L = 4;
    const mean = new Float64Array(nKeep * L * L);
    let count = 0;
    for (const l of layers) {
      const hw = l.height * l.width;
      const s = host.get(l.path) as Float64Array;
      // [heads, nKeep, h, w] from [B, heads, hw, Lk].
      const maps = new Float64Array(l.heads * nKeep * hw);
      for (let h = 0; h < l.heads; h++) for (let t = 0; t < nKeep; t++) for (let q = 0; q < hw; q++) maps[(h * nKeep + t) * hw + q] = s[((image * l.heads + h) * hw + q) * Lk + t];
      const got = acc.layerSum(l.path, image, nKeep);
      expectClose(await got.toArray(), maps, { label: `layer ${l.path}`, relL2: 1e-6 });
      got.dispose();
      const up = bicubicRef(maps, [l.heads, nKeep, l.height, l.width], L, L);
      for (let i = 0; i < up.length; i++) mean[i % mean.length] += Math.max(up[i], 0);
      count += l.heads;
    }
    mean.forEach((v, i) => (mean[i] = v / count));
    const tm = acc.tokenMaps(image, nKeep, L, L);
    expectClose(await tm.toArray(), mean, { label: 'token maps', relL2: 1e-6 });
    tm.dispose();
    acc.dispose();
  });

  it('hooks attn2 of the down and up blocks, up first, never the mid block', async () => {
    const { sd } = await tinyModels();
    const paths = daamLayers(sd.unet, 8, 8).map((l) => `${l.path}@${l.height}:${l.heads}`);
    const tb = (p: string) => `${p}.transformer_blocks.0.attn2`;
    expect(paths).toEqual([
      `${tb('up_blocks.1.attentions.0')}@2:2`, `${tb('up_blocks.1.attentions.1')}@2:2`,
      `${tb('up_blocks.2.attentions.0')}@4:2`, `${tb('up_blocks.2.attentions.1')}@4:2`,
      `${tb('up_blocks.3.attentions.0')}@8:2`, `${tb('up_blocks.3.attentions.1')}@8:2`,
      `${tb('down_blocks.0.attentions.0')}@8:2`, `${tb('down_blocks.1.attentions.0')}@4:2`,
      // down_blocks.2 is at latent/4 = 2 here; factor-8 maps (latent/8) would be skipped.
      `${tb('down_blocks.2.attentions.0')}@2:2`,
    ]);
  });

  it('per-head probabilities average to the fused kernel head mean, and rows select the batch', async () => {
    const { rt, sd } = await tinyModels();
    const B = 2;
    const sample = Tensor.from(rt, randomArray(B * 4 * 8 * 8, 21), [B, 4, 8, 8]);
    const text = Tensor.from(rt, randomArray(B * 77 * 32, 22), [B, 77, 32]);
    const path = 'down_blocks.0.attentions.0.transformer_blocks.0.attn2';
    const got = new Map<string, Tensor>();
    const sink = (rows?: [number, number]): CrossAttentionSink => ({ rows, wants: (p) => p === path, receive: (_p, probs) => got.set(rows ? 'rows' : 'all', keep(probs)) });
    const out = sd.unet.forward(rt, sample, [500], text, { crossAttentionProbs: true, crossAttentionSink: sink() });
    sd.unet.forward(rt, sample, [500], text, { crossAttentionSink: sink([1, 2]) }).sample.dispose();
    const all = await (got.get('all') as Tensor).toArray();
    const mean = await (out.crossAttention?.get(path) as Tensor).toArray();
    const [b, H, Lq, Lk] = (got.get('all') as Tensor).shape;
    expect([b, H, Lq, Lk]).toEqual([2, 2, 64, 77]);
    const avg = new Float64Array(B * Lq * Lk);
    for (let r = 0; r < B; r++) for (let h = 0; h < H; h++) for (let i = 0; i < Lq * Lk; i++) avg[r * Lq * Lk + i] += all[(r * H + h) * Lq * Lk + i] / H;
    expectClose(mean, avg, { label: 'head mean', relL2: 1e-5 });
    const rowSum = all.subarray(0, Lk).reduce((a, v) => a + v, 0);
    expect(Math.abs(rowSum - 1)).toBeLessThan(1e-5);
    expect(Array.from(await (got.get('rows') as Tensor).toArray())).toEqual(Array.from(all.subarray(H * Lq * Lk)));
    for (const t of [...got.values(), out.sample, ...(out.crossAttention?.values() ?? []), sample, text]) t.dispose();
  });

  it('mask rule: only pixels outside the band may differ', () => {
    const values = [-1, -1e-4, 2e-4, 0.5, 1];
    const expected = [0, 0, 1, 1, 1];
    // Pixels 1 and 2 lie within 1e-3 * max|values| of 0: their differences are excused.
    expect(maskBandActual([0, 1, 0, 1, 1], expected, values, { threshold: 0, band_relative_to_max_abs: 1e-3 })).toEqual(expected);
    expect(maskBandActual([1, 1, 0, 1, 1], expected, values, { threshold: 0, band_relative_to_max_abs: 1e-3 })[0]).toBe(1);
    expect(maskBandActual([0, 0, 1, 0, 1], expected, values, { threshold: 0.5, band_absolute: 1e-3 })).toEqual([0, 0, 1, 1, 1]);
  });
});

describe('generateGrounded (tiny SD, random grounding module)', () => {
  const base: GroundedOptions = { prompt: 'a photograph of a potted plant and a cat', steps: 2, seed: 5, batchNorm: 'eval' };

  it('returns images, masks = logits > 0, DAAM maps, timings and settings; repeats exactly', async () => {
    const { sd, seg } = await tinyModels();
    const stages: string[] = [];
    const r = await generateGrounded(sd, seg, { ...base, batch: 2, daam: true, onProgress: (p) => stages.push(`${p.stage}:${p.step}/${p.total}`) });
    expect([r.width, r.height]).toEqual([SIZE, SIZE]);
    expect(stages).toEqual(['text:1/1', 'denoise:1/2', 'denoise:2/2', 'vae:1/1', 'grounding:1/2', 'grounding:2/2', 'daam:1/2', 'daam:2/2']);
    expect(r.settings.classes).toEqual(['potted plant', 'cat']);
    expect(r.settings.timesteps).toEqual([501, 1]);
    expect(r.settings.featureStep).toBe(1);
    expect(r.settings.featureStepIndex).toBe(1);
    expect(r.warnings).toEqual([]);
    for (const k of ['text', 'denoise', 'vae', 'grounding', 'daam', 'total'] as const) expect(r.timings[k]).toBeGreaterThanOrEqual(0);
    expect(r.images.length).toBe(2);
    const px = SIZE * SIZE;
    for (const img of r.images) {
      expect(img.rgb.length).toBe(3 * px);
      expect(img.rgba.length).toBe(4 * px);
      expect(img.rgb.every((v) => v >= 0 && v <= 1)).toBe(true);
      expect(img.masks.length).toBe(2);
      img.logits.forEach((l, c) => {
        expect(l.length).toBe(px);
        expect(Array.from(img.masks[c])).toEqual(Array.from(l, (x) => (x > 0 ? 1 : 0)));
      });
      expect(img.daam?.map((w) => w.word)).toEqual(['potted plant', 'cat', 'a', 'photograph', 'of', 'potted', 'plant', 'and']);
      for (const w of img.daam ?? []) {
        expect(w.heatmap.length).toBe(px);
        expect(w.latent.length).toBe(px / 64);
        expect(Math.min(...w.heatmap)).toBeGreaterThanOrEqual(0);
        expect(Math.max(...w.heatmap)).toBeLessThanOrEqual(1);
        expect(Array.from(w.mask)).toEqual(Array.from(w.heatmap, (v) => (v > 0.4 ? 1 : 0)));
      }
      expect(img.daam?.[0].mergeIndices).toEqual([5, 6]);
    }
    // The two images use different latent streams.
    expect(r.images[0].rgb.some((v, i) => v !== r.images[1].rgb[i])).toBe(true);
    // Same seed, eval mode: the same pixels and logits; image 0 of the batch equals a batch of 1.
    const again = await generateGrounded(sd, seg, { ...base, batch: 1 });
    expectClose(again.images[0].rgb, r.images[0].rgb, { label: 'image 0 alone', relL2: 1e-6 });
    expectClose(again.images[0].logits[0], r.images[0].logits[0], { label: 'logits 0 alone', relL2: 1e-5 });
    const third = await generateGrounded(sd, seg, { ...base, batch: 1 });
    expect(Buffer.from(third.images[0].rgb.buffer).equals(Buffer.from(again.images[0].rgb.buffer))).toBe(true);
    expect(Buffer.from(third.images[0].logits[1].buffer).equals(Buffer.from(again.images[0].logits[1].buffer))).toBe(true);
  });

  it('official BatchNorm mode advances the buffers; a snapshot restores determinism; long prompts warn', async () => {
    const { sd, seg } = await tinyModels();
    const u0 = (s: Segmodule) => namedParams(s).get('highest_feature_mix_conv.conv1.u0')?.t.toArray();
    const snap = await snapshotGroundingState(seg);
    const long = `${base.prompt} ${Array.from({ length: 80 }, (_, i) => `x${i}`).join(' ')}`;
    const opts: GroundedOptions = { ...base, prompt: long, classes: ['potted plant', 'cat'], batchNorm: 'official' };
    const a = await generateGrounded(sd, seg, opts);
    expect(a.warnings.length).toBe(1);
    expect(a.warnings[0]).toMatch(/77-token limit.*dropped: "x66 x67 .* x79"/);
    expect(Array.from((await u0(seg)) ?? [])).not.toEqual(Array.from(snap.get('highest_feature_mix_conv.conv1.u0') ?? []));
    await restoreGroundingState(seg, snap);
    const b = await generateGrounded(sd, seg, opts);
    expect(Buffer.from(b.images[0].logits[0].buffer).equals(Buffer.from(a.images[0].logits[0].buffer))).toBe(true);
    const afterOne = Array.from((await u0(seg)) ?? []);
    // A batch runs the module image by image: image 0 sees the same buffers as a batch of
    // one, and the buffers advance once per image.
    await restoreGroundingState(seg, snap);
    const two = await generateGrounded(sd, seg, { ...opts, batch: 2 });
    expectClose(two.images[0].logits[0], a.images[0].logits[0], { label: 'official image 0 of 2', relL2: 1e-5 });
    expect(Array.from((await u0(seg)) ?? [])).not.toEqual(afterOne);
  });

  it('refuses bad input clearly, before any denoising', async () => {
    const { sd, seg } = await tinyModels();
    await expect(generateGrounded(sd, seg, { ...base, prompt: 'a cat on a mat' })).rejects.toThrow(/classes option/);
    await expect(generateGrounded(sd, seg, { ...base, classes: ['cat', 'dog'] })).rejects.toThrow(/class 'dog' does not occur in the prompt/);
    await expect(generateGrounded(sd, seg, { ...base, classes: ['cat', 'Cat'] })).rejects.toThrow(/class 'Cat' is given twice/);
    // The paper's ablation timestep 5: on the leading DDIM schedule from 201 steps (stride 4) on.
    await expect(generateGrounded(sd, seg, { ...base, featureStep: 5 })).rejects.toThrow(/featureStep 5 is not a timestep of the 2-step ddim schedule \(501, 1\).*pick 1 or 501, or use 201 steps/);
    await expect(generateGrounded(sd, seg, { ...base, daam: true, daamWords: ['horse'] })).rejects.toThrow(/DAAM word 'horse' does not occur/);
    await expect(generateGrounded(sd, seg, { ...base, steps: 0, threshold: 2 })).rejects.toThrow(/steps 0 must be a positive integer; threshold 2 must be in \(0, 1\)/);
    await expect(generateGrounded(sd, seg, { ...base, height: 64, width: 128 })).rejects.toThrow(/not square/);
    // A module built for other widths: every mismatch named, as a WeightError.
    const cfg = groundingConfigFor(sd, SIZE);
    const wrong = new Segmodule({ ...cfg, feature_channels: { ...cfg.feature_channels, high: [8, 8, 8, 8] }, context_dim: 24 });
    const err = await generateGrounded(sd, wrong, base).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeightError);
    expect(String(err)).toMatch(/feature_channels.high is \[8, 8, 8, 8\], the UNet's taps give \[16, 32, 32, 32\].*context_dim is 24, the text encoder's width is 32/);
    const small = new Segmodule({ ...cfg, feature_res: { low: 2, mid: 4, high: 8, highest: 16 }, low_feature_size: 4, mid_feature_size: 8, high_feature_size: 16 });
    await expect(generateGrounded(sd, small, { ...base, height: SIZE, width: SIZE })).rejects.toThrow(/feature_res.highest is 16, the UNet's highest taps are 8x8.*or generate 128x128 images/);
    expect(err).not.toBeInstanceOf(InputError);
  });
});
