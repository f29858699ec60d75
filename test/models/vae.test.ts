// AutoencoderKL (the golden fixtures themselves run in test/pipeline/parity.test.ts): the
// vae_tiny fixture with a tiny binding limit so every convolution
// runs in row bands and the mid-block attention as row-chunked matmul-softmax-matmul,
// parameter counts (fixtures and the real SD 1.5 VAE), and config validation.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { conv2dBanded } from '../../src/models/layers/conv.js';
import { SD15_VAE_CONFIG } from '../../src/models/vae/config.js';
import { AutoencoderKL } from '../../src/models/vae/vae.js';
import { countParams } from '../../src/nn/module.js';
import { runParity } from '../../src/pipeline/parity/index.js';
import { evaluate } from '../../src/pipeline/parity/types.js';
import { runVaeParity } from '../../src/pipeline/parity/vae.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { expectClose, goldenDir, randomTensor, runtime } from '../helpers.js';

async function manifestOf(dir: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
}

describe('AutoencoderKL', () => {
  const vaeTiny = goldenDir('vae_tiny');
  it.skipIf(!vaeTiny)('matches vae_tiny with row-banded convolutions and row-chunked attention (forced 64 KiB bindings)', async () => {
    const dir = vaeTiny as string;
    // 64 KiB: every 3x3 conv of a sample runs in bands of a few rows (asymmetric downsampler
    // pads and resnet residuals included) and the 256-token attention in blocks of 32 rows.
    const checks = await runVaeParity(dir, await manifestOf(dir), () => {}, { maxBindingBytes: 64 << 10, unfusedAttention: true });
    const rows = checks.map(evaluate);
    console.log(`vae_tiny banded: worst rel_max ${Math.max(...rows.map((r) => r.rel)).toExponential(2)}`);
    expect(rows.length).toBeGreaterThanOrEqual(12);
    for (const r of rows) expect(r.pass, `${r.name}: rel ${r.rel} (tol ${r.tol})`).toBe(true);
  });

  it.each<[string, number, [number, number, number, number], number[]]>([
    ['3x3 stride 1, pads 1 + residual', 1, [1, 1, 1, 1], [2, 5, 13, 11]],
    ['3x3 stride 2, pads (0,1,0,1)', 2, [0, 1, 0, 1], [2, 5, 13, 11]],
    ['1x1 + residual', 1, [0, 0, 0, 0], [1, 6, 9, 7]],
  ])('conv2dBanded in row bands equals the whole convolution: %s', async (_, stride, pads, shape) => {
    const rt = await runtime();
    const k = pads[0] + pads[1] === 0 ? 1 : 3;
    const x = randomTensor(rt, shape, 41).t;
    const w = randomTensor(rt, [7, shape[1], k, k], 42).t;
    const b = randomTensor(rt, [7], 43).t;
    const ho = Math.floor((shape[2] + pads[2] + pads[3] - k) / stride) + 1;
    const wo = Math.floor((shape[3] + pads[0] + pads[1] - k) / stride) + 1;
    const residual = stride === 1 ? randomTensor(rt, [shape[0], 7, ho, wo], 44).t : undefined;
    const whole = await conv2dBanded(x, w, b, { stride, pads, residual }).toArray();
    // 3 KiB: no sample's padded input fits (>= 4.9 KiB); bands of 1 (stride 2) to 5 rows do.
    const banded = await conv2dBanded(x, w, b, { stride, pads, residual, maxBindingBytes: 3072 }).toArray();
    expectClose(banded, whole, { label: 'banded conv', relL2: 1e-7 });
  });

  it('has the parameter count of the real SD 1.5 VAE', () => {
    const sd = new AutoencoderKL(SD15_VAE_CONFIG);
    expect(countParams(sd)).toBe(83_653_863);
    expect(sd.scaleFactor).toBe(8);
  });

  const vaeFixtures = ['vae_tiny', 'vae_sd'].map((f) => [f, goldenDir(f)] as const);
  it.skipIf(vaeFixtures.some(([, d]) => !d))('has the parameter counts of the fixtures (vae_tiny, vae_sd)', async () => {
    for (const [, dir] of vaeFixtures) {
      const m = await manifestOf(dir as string);
      const model = new AutoencoderKL(m.config as Record<string, never>);
      expect(countParams(model)).toBe((m.weights as { num_parameters: number }).num_parameters);
    }
  });

  it('rejects bad configs by name and unknown taps', async () => {
    const bad = (patch: Record<string, unknown>, re: RegExp) => expect(() => new AutoencoderKL({ ...SD15_VAE_CONFIG, ...patch })).toThrow(re);
    bad({ down_block_types: ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'] }, /down_block_types\[1\] = 'AttnDownEncoderBlock2D' is not supported/);
    bad({ up_block_types: ['UpDecoderBlock2D'] }, /up_block_types has 1 entries but block_out_channels has 4/);
    bad({ block_out_channels: [128, 256, 500, 512] }, /divisible by norm_num_groups 32 \(found 500\)/);
    bad({ act_fn: 'gelu' }, /act_fn = 'gelu' is not supported/);
    bad({ layers_per_block: 0 }, /layers_per_block = 0/);
    bad({ use_quant_conv: false }, /use_quant_conv = false is not supported/);
    expect(() => new AutoencoderKL({ ...SD15_VAE_CONFIG, act_fn: 'relu' })).toThrow(ShapeError);
    const rt = await runtime();
    const tiny = new AutoencoderKL({ block_out_channels: [32], norm_num_groups: 8 });
    const z = Tensor.zeros(rt, [1, 4, 2, 2]);
    expect(() => tiny.decodeWithTaps(rt, z, { taps: ['decoder.up_blocks.3'] })).toThrow(InputError);
    expect(() => tiny.encode(rt, Tensor.zeros(rt, [1, 4, 8, 8]))).toThrow(/expects f32 or f16 \[B, 3, H, W\]/);
  });
});
