// f16 parity: every golden fixture of the SD components (clip_text, unet, vae) and of the
// grounded chain, run by its parity handler with the models in f16 (weights and
// activations stored in f16; accumulation, norm statistics, softmax, the scheduler and
// the grounding module in f32) against the stored float32 references.
//
// Tolerances, from f16's unit roundoff u = 2^-11 (4.9e-4: every stored weight and
// activation is within u of its value, relative):
// - one model's outputs and hooks: max|f16 - ref| / max|ref| <= 16u = 2^-7 (7.8e-3). A
//   value rounded once is off by <= u; errors from d roundings along the deepest path of
//   layers that neither amplify nor cancel much add up like sqrt(d) u in RMS, and the
//   fixture models have d ~ 20-100 (sqrt ~ 5-10; the maximum element is a few RMS). Measured
//   on lavapipe: 4-8u (clip_text 2.0e-3, unet_tiny 2.0e-3, unet_sd 2.5e-3, vae_tiny 2.3e-3,
//   vae_sd 3.7e-3).
// - the grounded chain: 32u = 2^-6 (1.6e-2). Each denoising step feeds the last one's
//   rounded latents back into the UNet, and guidance uncond + g (cond - uncond) with g = 7.5
//   scales the rounding of both predictions by up to 2g - 1 = 14 relative to their
//   difference. Measured 14u (noise_pred_guided 6.7e-3), everything else <= 11u.
// - masks (sigmoid(logit) > 0.5, DAAM map > 0.4): a pixel may differ only where its
//   reference value lies within the chain tolerance of the threshold (times max|value|),
//   the f16 counterpart of the fixtures' own band (10x their f32 tolerance, here 1x: the
//   tolerance is already the bound on the value's error).
// Exact outputs (token ids, timesteps, DAAM merge indices) stay exact.
// Also: the pipeline's generate() on the tiny SD in f16 against the same run in f32, and the
// refusal of f16 on a device without shader-f16.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LimitError } from '../../src/gpu/errors.js';
import { Runtime } from '../../src/gpu/runtime.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { StableDiffusion, TINY_CONFIGS } from '../../src/models/sd.js';
import { namedParams } from '../../src/nn/module.js';
import { generate } from '../../src/pipeline/generate.js';
import { fixtureDirs, parityHandler, readManifest, uncompared } from '../../src/pipeline/parity/index.js';
import { evaluate, type ParityCheck } from '../../src/pipeline/parity/types.js';
import { runVaeParity } from '../../src/pipeline/parity/vae.js';
import { compare, goldenDir, requireF16, runtime } from '../helpers.js';

const U = 2 ** -11;
const TOL_MODEL = 16 * U;
const TOL_CHAIN = 32 * U;
const TOL: Record<string, number> = { clip_text: TOL_MODEL, unet: TOL_MODEL, vae: TOL_MODEL, grounded: TOL_CHAIN };

const root = goldenDir();
const dirs = root ? fixtureDirs(root) : [];
const components = await Promise.all(dirs.map(async (d) => String((await readManifest(d)).component ?? '')));
const cases = dirs.map((d, i) => ({ name: d.slice((root ?? '').length + 1), dir: d, component: components[i] })).filter((c) => c.component in TOL);

interface MaskSpec { compare?: string; values?: string; threshold?: number }

/** Pixels of a mask check that differ from the reference although their reference value
 *  lies farther than `tol` * max|value| from the threshold; `farthest` is the largest such
 *  distance of a differing pixel, in units of max|value|. */
async function masksOutsideBand(dir: string, c: ParityCheck, spec: MaskSpec, tol: number): Promise<{ flipped: number; outside: number[]; farthest: number }> {
  const io = await SafetensorsFile.open(join(dir, 'io.safetensors'));
  try {
    const values = await io.readF32(spec.values ?? '');
    const scale = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const th = spec.threshold ?? 0;
    let flipped = 0;
    let farthest = 0;
    const outside: number[] = [];
    for (let i = 0; i < c.expected.length; i++) {
      if (c.actual[i] === c.expected[i]) continue;
      flipped++;
      const d = Math.abs(values[i] - th) / scale;
      farthest = Math.max(farthest, d);
      if (d > tol && outside.length < 8) outside.push(i);
    }
    return { flipped, outside, farthest };
  } finally {
    await io.close();
  }
}

describe('f16 parity against the float32 golden references', () => {
  it.skipIf(!root)('finds the model fixtures', () => {
    for (const c of ['clip_text', 'unet', 'vae', 'grounded']) expect(cases.some((k) => k.component === c), c).toBe(true);
  });

  it.for(cases.map((c) => [c.name, c.dir, c.component] as const))('%s in f16', { timeout: 1_800_000 }, async ([name, dir, component], ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const manifest = await readManifest(dir);
    const handler = parityHandler(component);
    if (!handler) throw new Error(`no parity handler for ${component}`);
    const tol = TOL[component];
    const checks = await handler.run(dir, manifest, () => {}, { dtype: 'f16' });
    expect(checks.length).toBeGreaterThan(0);
    expect(uncompared(manifest, checks).map((r) => r.name), 'outputs the manifest lists but no check compared').toEqual([]);
    const specs = ((manifest.io as { tensors?: Record<string, MaskSpec> } | undefined)?.tensors ?? {});
    const failures: string[] = [];
    const lines: string[] = [];
    let worst = 0;
    for (const c of checks) {
      const row = evaluate(c);
      if (c.metric === 'rel_max' || c.metric === 'abs') {
        worst = Math.max(worst, row.rel);
        lines.push(`  ${c.name}: rel ${row.rel.toExponential(2)} (${(row.rel / U).toFixed(1)}u)`);
        if (!(row.rel <= tol)) failures.push(`${c.name}: rel ${row.rel.toExponential(3)} > ${tol.toExponential(3)}`);
      } else if (specs[c.name]?.compare === 'mask') {
        const m = await masksOutsideBand(dir, c, specs[c.name], tol);
        lines.push(`  ${c.name}: ${m.flipped} of ${c.expected.length} pixels flipped, the farthest ${(m.farthest / U).toFixed(1)}u x max|value| from the threshold`);
        if (m.outside.length) failures.push(`${c.name}: pixels ${m.outside.join(',')} differ outside the f16 band`);
      } else if (!row.pass) {
        failures.push(`${c.name}: not exact (max abs ${row.maxAbs})`);
      }
    }
    console.log(`${name} f16: worst rel ${worst.toExponential(2)} (${(worst / U).toFixed(1)}u, tolerance ${(tol / U).toFixed(0)}u)\n${lines.join('\n')}`);
    expect(failures, failures.join('\n')).toEqual([]);
  });
});

describe('f16 paths the fixtures do not take by themselves', () => {
  const vaeTiny = goldenDir('vae_tiny');
  it.skipIf(!vaeTiny)('vae_tiny in f16 with row-banded convolutions and the unfused (f32-score) attention', { timeout: 600_000 }, async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const dir = vaeTiny as string;
    // The SD VAE's 512-wide single head takes the unfused path, which runs its scores in
    // f32 for an f16 model; 64 KiB bindings force it and the row bands (as vae.test.ts).
    const checks = await runVaeParity(dir, await readManifest(dir), () => {}, { maxBindingBytes: 64 << 10, unfusedAttention: true }, { dtype: 'f16' });
    const rows = checks.map(evaluate);
    const worst = Math.max(...rows.map((r) => r.rel));
    console.log(`vae_tiny f16 banded, unfused attention: worst rel ${worst.toExponential(2)} (${(worst / U).toFixed(1)}u)`);
    expect(rows.length).toBeGreaterThanOrEqual(12);
    for (const r of rows) expect(r.rel, r.name).toBeLessThanOrEqual(TOL_MODEL);
  });
});

describe('f16 models in the pipeline', () => {
  it('generate() on the tiny SD in f16 gives the f32 image within the chain tolerance', { timeout: 600_000 }, async (ctx) => {
    const rt = await runtime();
    requireF16(rt, ctx);
    const opts = { prompt: 'a photograph of a dog and a cat', steps: 3, guidanceScale: 7.5, seed: 5, height: 64, width: 64, scheduler: 'ddim' as const };
    const images: Float32Array[] = [];
    for (const dtype of ['f32', 'f16'] as const) {
      const sd = StableDiffusion.random(rt, TINY_CONFIGS, 0, { dtype });
      expect(sd.dtype).toBe(dtype);
      for (const [name, p] of namedParams(sd.unet)) expect(p.t.dtype, name).toBe(dtype);
      const r = await generate(sd, opts);
      expect(r.images.dtype).toBe('f32');
      expect(r.latents.dtype).toBe('f32');
      images.push(await r.images.toArray());
      r.images.dispose();
      r.latents.dispose();
      sd.dispose();
    }
    const c = compare(images[1], images[0]);
    const maxRef = images[0].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    console.log(`tiny generate f16 vs f32: max abs ${c.maxAbs.toExponential(2)} (${(c.maxAbs / maxRef / U).toFixed(1)}u of max), rel L2 ${c.relL2.toExponential(2)}`);
    expect(c.bad).toEqual([]);
    expect(c.maxAbs / maxRef).toBeLessThanOrEqual(TOL_CHAIN);
  });

  it('refuses f16 on a device without shader-f16, naming the feature and the way out', async () => {
    const rt = await Runtime.create({ f16: false });
    try {
      expect(rt.gpu.hasF16).toBe(false);
      expect(() => StableDiffusion.random(rt, TINY_CONFIGS, 0, { dtype: 'f16' })).toThrow(LimitError);
      expect(() => StableDiffusion.random(rt, TINY_CONFIGS, 0, { dtype: 'f16' })).toThrow(/dtype 'f16' needs the adapter's shader-f16 feature, which .* does not offer; run in f32 \(--dtype f32\)/);
      // Before the path is even opened.
      await expect(StableDiffusion.load(rt, '/nonexistent/sd', { dtype: 'f16' })).rejects.toThrow(/shader-f16/);
      expect(() => StableDiffusion.random(rt, TINY_CONFIGS, 0, { dtype: 'bf16' as 'f16' })).toThrow(/dtype must be 'f32' or 'f16', got "bf16"/);
    } finally {
      rt.destroy();
    }
  });
});
