// UNet2DConditionModel (the golden fixtures run in test/pipeline/parity.test.ts): the 25 grounding taps against the grounding README table on
// an SD-structured config scaled down 10x in width and 4x in size, cross-attention maps,
// config validation, and the fused GEGLU kernel against float64.
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/gpu/errors.js';
import type { Runtime } from '../../src/gpu/runtime.js';
import { FeedForward, Transformer2DModel } from '../../src/models/unet/attention.js';
import { Downsample2D, Upsample2D } from '../../src/models/layers/resnet.js';
import { ForwardContext } from '../../src/models/unet/context.js';
import { GROUNDING_TAPS, SD15_UNET_CONFIG, UNet2DConditionModel, type UNet2DConditionConfig } from '../../src/models/unet/index.js';
import type { Module } from '../../src/nn/module.js';
import { geglu } from '../../src/nn/geglu.js';
import { namedParams } from '../../src/nn/module.js';
import { runParity } from '../../src/pipeline/parity/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { ACT_REF } from '../../src/ref/elementwise.js';
import { expectClose, goldenDir, randomArray, randomTensor, runtime, TOL } from '../helpers.js';

/** SD 1.5's structure at a tenth of the width (320/640/1280 -> 32/64/128). */
const SCALED_SD: UNet2DConditionConfig = { ...SD15_UNET_CONFIG, block_out_channels: [32, 64, 128, 128], cross_attention_dim: 16 };

/** Random weights in [-0.2, 0.2); returns the host copies by parameter name. */
function randomWeights(rt: Runtime, model: Module, seed: number): Map<string, Float32Array> {
  let s = seed;
  const host = new Map<string, Float32Array>();
  for (const [name, p] of namedParams(model)) {
    const data = randomArray(p.shape.reduce((a, b) => a * b, 1), s++, -0.2, 0.2);
    p.set(Tensor.from(rt, data, p.shape));
    host.set(name, data);
  }
  return host;
}

describe('UNet2DConditionModel', () => {
  it('exposes the 25 grounding taps with the README table shapes (scaled) and cross-attention maps', async () => {
    const rt = await runtime();
    const model = new UNet2DConditionModel(SCALED_SD);
    randomWeights(rt, model, 100);
    // README section 1 at 512x512 (latent 64): UNet widths before the CFG x2, per group.
    const table: Record<string, { res: number; channels: number[]; sum: number }> = {
      low: { res: 8, channels: [1280, 1280, 1280, 1280, 1280, 1280], sum: 15360 },
      mid: { res: 16, channels: [640, 1280, 1280, 1280, 1280, 1280], sum: 14080 },
      high: { res: 32, channels: [320, 640, 640, 1280, 640, 640], sum: 8320 },
      highest: { res: 64, channels: [320, 320, 320, 640, 320, 320, 320], sum: 5120 },
    };
    const all = Object.values(GROUNDING_TAPS).flat();
    expect(new Set(all).size).toBe(25);
    const L = 5;
    const sample = randomTensor(rt, [1, 4, 16, 16], 1).t;
    const ehs = randomTensor(rt, [1, L, 16], 2).t;
    const live = rt.memory().liveBytes;
    const out = model.forward(rt, sample, [500], ehs, { taps: [...all, 'down_blocks.1', 'up_blocks.2', 'mid_block'], crossAttentionProbs: true });
    for (const [group, names] of Object.entries(GROUNDING_TAPS)) {
      const want = table[group];
      expect(names.length).toBe(want.channels.length);
      names.forEach((name, i) => {
        const r = want.res / 4;
        expect(out.taps.get(name)?.shape, `${group} ${name}`).toEqual([1, want.channels[i] / 10, r, r]);
      });
      expect(2 * names.reduce((a, n) => a + (out.taps.get(n)?.shape[1] ?? 0), 0) * 10).toBe(want.sum);
    }
    // Diffusers hooks and LDM names share tensors: down_blocks.i is the last input block of i.
    expect(out.taps.get('down_blocks.1')).toBe(out.taps.get('input_blocks.6'));
    expect(out.taps.get('up_blocks.2')).toBe(out.taps.get('output_blocks.8'));
    expect(out.taps.get('mid_block')).toBe(out.taps.get('middle_block'));
    // 16 attn2 modules in SD 1.x (6 down, 1 mid, 9 up); rows are probability distributions.
    const maps = out.crossAttention ?? new Map<string, Tensor>();
    expect(maps.size).toBe(16);
    const probs = maps.get('down_blocks.0.attentions.1.transformer_blocks.0.attn2');
    expect(probs?.shape).toEqual([1, 256, L]);
    const p = (await probs?.toArray()) ?? new Float32Array();
    for (let row = 0; row < 256; row += 37) {
      const s = p.slice(row * L, row * L + L).reduce((a, b) => a + b, 0);
      expect(Math.abs(s - 1)).toBeLessThan(1e-5);
    }
    expect(maps.get('mid_block.attentions.0.transformer_blocks.0.attn2')?.shape).toEqual([1, 4, L]);
    // Nothing but the returned tensors outlives the forward.
    for (const t of [out.sample, ...out.taps.values(), ...maps.values()]) t.dispose();
    expect(rt.memory().liveBytes).toBe(live);
    expect(() => model.forward(rt, sample, [500], ehs, { taps: ['input_blocks.12'] })).toThrow(/unknown taps input_blocks\.12/);
    // 12x12 latents halve to 6, 3, 2: the upsampler crops 4 back to 3 to meet its skip.
    const odd = model.forward(rt, randomTensor(rt, [1, 4, 12, 12], 3).t, [1], ehs);
    expect(odd.sample.shape).toEqual([1, 4, 12, 12]);
    for (const v of await odd.sample.toArray()) expect(Number.isFinite(v)).toBe(true);
  });

  it('rejects bad configs by key name, printing the values', () => {
    const bad = (patch: Record<string, unknown>) => () => new UNet2DConditionModel({ ...SD15_UNET_CONFIG, ...patch } as UNet2DConditionConfig);
    expect(bad({ down_block_types: ['CrossAttnDownBlock2D', 'AttnDownBlock2D', 'DownBlock2D', 'DownBlock2D'] })).toThrow(/down_block_types\[1\] = "AttnDownBlock2D" is not an SD 1.x block type/);
    expect(bad({ up_block_types: ['UpBlock2D', 'SimpleCrossAttnUpBlock2D', 'UpBlock2D', 'UpBlock2D'] })).toThrow(/up_block_types\[1\] = "SimpleCrossAttnUpBlock2D"/);
    expect(bad({ resnet_time_scale_shift: 'scale_shift' })).toThrow(/resnet_time_scale_shift = "scale_shift" is not supported/);
    expect(bad({ mid_block_type: 'UNetMidBlock2DSimpleCrossAttn' })).toThrow(/mid_block_type/);
    expect(bad({ block_out_channels: [320, 640, 1280] })).toThrow(/down_block_types .* one entry per block_out_channels entry \(3\)/);
    expect(bad({ norm_num_groups: 48 })).toThrow(/divisible by norm_num_groups = 48/);
    expect(bad({ attention_head_dim: [8, 8] })).toThrow(/attention_head_dim = \[8,8\]/);
    expect(bad({ num_attention_heads: 8 })).toThrow(/num_attention_heads = 8 is not supported/);
    expect(bad({ class_embed_type: 'timestep', addition_embed_type: 'text' })).toThrow(ShapeError);
    try {
      bad({ class_embed_type: 'timestep', addition_embed_type: 'text' })();
    } catch (e) {
      expect((e as Error).message).toMatch(/class_embed_type = "timestep"[\s\S]*addition_embed_type = "text"/);
    }
    // SD 1.5 itself resolves: 8 heads everywhere, 1280-wide time embedding.
    const m = new UNet2DConditionModel(SD15_UNET_CONFIG);
    expect(m.resolved.heads).toEqual([8, 8, 8, 8]);
    expect(m.resolved.timeEmbedDim).toBe(1280);
    expect(m.tapNames().filter((n) => /^(input|output)_blocks\./.test(n)).length).toBe(24);
    expect(namedParams(m).get('down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight')?.shape).toEqual([320, 1280]);
    expect(namedParams(m).get('up_blocks.1.resnets.2.conv_shortcut.weight')?.shape).toEqual([1280, 1920, 1, 1]);
    // 512x512 fits 128 MiB bindings: the largest weight (up_blocks.0 conv1, 1280x2560x3x3) is 118 MB.
    const largest = Math.max(...[...namedParams(m).values()].map((p) => p.shape.reduce((a, b) => a * b, 1) * 4));
    expect(largest).toBe(1280 * 2560 * 9 * 4);
    expect(largest).toBeLessThan(128 * 2 ** 20);
  });

  it.each([[37, 13], [2, 4 * 160], [5, 1280]])('geglu %i rows x %i matches float64', async (rows, n) => {
    const rt = await runtime();
    const { t, data } = randomTensor(rt, [rows, 2 * n], 40 + n, -4, 4);
    const y = geglu(t);
    expect(y.shape).toEqual([rows, n]);
    const ref = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) ref[r * n + j] = data[r * 2 * n + j] * ACT_REF.gelu.f(data[r * 2 * n + n + j]);
    expectClose(await y.toArray(), ref, { label: `geglu ${rows}x${n}`, relL2: TOL.elementwise });
  });

  it('feed-forward row chunks (past the binding limit) equal float64', async () => {
    const rt = await runtime();
    const dim = 8;
    const rows = 203;
    const ff = new FeedForward(dim);
    const w = randomWeights(rt, ff, 60);
    const x = randomTensor(rt, [1, rows, dim], 61);
    const res = randomTensor(rt, [1, rows, dim], 62);
    const inner = 4 * dim;
    const [w1, b1, w2, b2] = ['net.0.proj.weight', 'net.0.proj.bias', 'net.2.weight', 'net.2.bias'].map((n) => w.get(n) ?? new Float32Array());
    const ref = new Float64Array(rows * dim);
    for (let r = 0; r < rows; r++) {
      const proj = Array.from({ length: 2 * inner }, (_, o) => b1[o] + Array.from({ length: dim }, (_, k) => w1[o * dim + k] * x.data[r * dim + k]).reduce((a, b) => a + b, 0));
      const g = Array.from({ length: inner }, (_, j) => proj[j] * ACT_REF.gelu.f(proj[inner + j]));
      for (let o = 0; o < dim; o++) ref[r * dim + o] = res.data[r * dim + o] + b2[o] + g.reduce((a, v, j) => a + w2[o * inner + j] * v, 0);
    }
    // 2 * inner * 4 bytes per projected row: a 64-row limit runs 4 chunks, the last ragged.
    const chunked = ff.forward(x.t, res.t, 64 * 2 * inner * 4);
    expectClose(await chunked.toArray(), ref, { label: 'feed-forward chunked', relL2: TOL.matmul });
    expectClose(await ff.forward(x.t, res.t).toArray(), ref, { label: 'feed-forward', relL2: TOL.matmul });
  });

  it('use_linear_projection ([out, in] weights) gives the 1x1-conv transformer output', async () => {
    const rt = await runtime();
    const conv = new Transformer2DModel(2, 8, 16, 1, 8, 4, false);
    const lin = new Transformer2DModel(2, 8, 16, 1, 8, 4, true);
    const host = randomWeights(rt, conv, 70);
    for (const [name, p] of namedParams(lin)) p.set(Tensor.from(rt, host.get(name) ?? new Float32Array(), p.shape));
    expect(namedParams(lin).get('proj_in.weight')?.shape).toEqual([16, 16]);
    const x = randomTensor(rt, [2, 16, 5, 3], 71).t;
    const ctx = new ForwardContext(randomTensor(rt, [2, 4], 72).t, randomTensor(rt, [2, 6, 8], 73).t, new Set(), false);
    const a = await conv.forward(ctx, x, 'conv').toArray();
    expect(await lin.forward(ctx, x, 'lin').toArray()).toEqual(a);
  });

  it('Downsample2D with downsample_padding 0 pads (0, 1, 0, 1) like diffusers', async () => {
    const rt = await runtime();
    const [B, C, H, W] = [2, 3, 7, 6];
    const down = new Downsample2D(C, 0);
    const w = randomWeights(rt, down, 80);
    const x = randomTensor(rt, [B, C, H, W], 81);
    const y = down.forward(x.t);
    const [Ho, Wo] = [Math.floor((H + 1 - 3) / 2) + 1, Math.floor((W + 1 - 3) / 2) + 1];
    expect(y.shape).toEqual([B, C, Ho, Wo]);
    const wt = w.get('conv.weight') ?? new Float32Array();
    const bias = w.get('conv.bias') ?? new Float32Array();
    const ref = new Float64Array(B * C * Ho * Wo);
    for (let b = 0; b < B; b++) for (let o = 0; o < C; o++) for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
      let acc = bias[o];
      for (let c = 0; c < C; c++) for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
        const [yy, xx] = [2 * i + ky, 2 * j + kx];
        if (yy < H && xx < W) acc += wt[((o * C + c) * 3 + ky) * 3 + kx] * x.data[((b * C + c) * H + yy) * W + xx];
      }
      ref[((b * C + o) * Ho + i) * Wo + j] = acc;
    }
    expectClose(await y.toArray(), ref, { label: 'downsample pad 0', relL2: TOL.matmul });
  });
});

describe('Upsample2D to an odd skip size', () => {
  it('2x nearest cropped to 2H-1 equals PyTorch nearest resize (src = floor(dst * in / out))', async () => {
    const rt = await runtime();
    const [N, C, H, W] = [2, 3, 5, 6];
    const { t: x, data } = randomTensor(rt, [N, C, H, W], 91);
    const up = new Upsample2D(C);
    // Identity 3x3 conv (centre tap 1, zero bias) exposes the resized map itself.
    const w = new Float32Array(C * C * 9);
    for (let c = 0; c < C; c++) w[(c * C + c) * 9 + 4] = 1;
    up.conv.weight.set(Tensor.from(rt, w, [C, C, 3, 3]));
    up.conv.bias?.set(Tensor.zeros(rt, [C]));
    const [oh, ow] = [2 * H - 1, 2 * W - 1];
    const y = await up.forward(x, [oh, ow]).toArray();
    const ref = new Float64Array(N * C * oh * ow);
    for (let p = 0; p < N * C; p++) {
      for (let i = 0; i < oh; i++) {
        for (let j = 0; j < ow; j++) {
          ref[(p * oh + i) * ow + j] = data[(p * H + Math.floor((i * H) / oh)) * W + Math.floor((j * W) / ow)];
        }
      }
    }
    expectClose(y, ref, { label: 'upsample to odd size', relL2: 1e-7 });
    expect(() => up.forward(x, [2 * H - 2, 2 * W])).toThrow(/cannot resize/);
  });
});
