// Grounding modules for a model (pipeline/grounding_module.ts): the built-in tiny SD's
// random module fits its UNet; a checkpoint round-trips through safetensors (any name
// prefix, head count from metadata or the official 8) with every widths read from the
// shapes; modules for another UNet or files that are no module are refused by name. And
// DAAM without a module (pipeline/daam_generate.ts) equals the DAAM of generateGrounded
// on the same seed, the chain the grounded_tiny fixture verifies.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError, WeightError } from '../../src/gpu/errors.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { Segmodule } from '../../src/models/grounding/segmodule.js';
import { StableDiffusion } from '../../src/models/sd.js';
import { disposeParams, namedParams } from '../../src/nn/module.js';
import { generateWithDaam, promptWords } from '../../src/pipeline/daam_generate.js';
import { checkModuleFits, featureLayout, generateGrounded } from '../../src/pipeline/grounded.js';
import {
  BUILTIN_TINY_CONFIGS, defaultImageSize, groundingConfigFor, loadGroundingModule, randomGroundingModule, TINY_GROUNDING_WIDTHS,
} from '../../src/pipeline/grounding_module.js';
import { expectClose, runtime } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'gsd-grounding-module-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function tiny() {
  const rt = await runtime();
  return { rt, sd: StableDiffusion.random(rt, BUILTIN_TINY_CONFIGS, 0) };
}

/** Every parameter and buffer of a module as host tensors, names prefixed. */
async function stateDict(seg: Segmodule, prefix: string) {
  const out: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const [name, p] of namedParams(seg)) out[prefix + name] = { dtype: 'F32', shape: [...p.shape], data: await p.t.toArray() };
  return out;
}

describe('grounding modules for a model', () => {
  it('the built-in tiny SD makes 64 px images; its random module fits the UNet taps', async () => {
    const { sd } = await tiny();
    expect(defaultImageSize(sd)).toBe(64);
    const cfg = groundingConfigFor(sd, 64, TINY_GROUNDING_WIDTHS);
    expect(cfg.feature_res).toEqual({ low: 1, mid: 2, high: 4, highest: 8 });
    expect([cfg.low_feature_size, cfg.mid_feature_size, cfg.high_feature_size, cfg.out_size]).toEqual([2, 4, 8, 64]);
    expect(() => checkModuleFits(cfg, featureLayout(sd.unet, 8, 8), sd.textEncoder.config.hidden_size, 8, 'tiny')).not.toThrow();
    // 128 px works too (latent 16); 48 px gives 6x6 features, not a multiple of the patch.
    expect(groundingConfigFor(sd, 128, TINY_GROUNDING_WIDTHS).feature_res.highest).toBe(16);
    expect(() => groundingConfigFor(sd, 48, TINY_GROUNDING_WIDTHS)).toThrow(/finest features are 6x6, not a multiple of the module's patch size 4/);
    expect(() => groundingConfigFor(sd, 60, TINY_GROUNDING_WIDTHS)).toThrow(InputError);
  });

  it('a checkpoint round-trips: widths from shapes, any prefix, heads from metadata or the official 8', async () => {
    const { rt, sd } = await tiny();
    const seg = randomGroundingModule(rt, sd, 64, 7);
    const file = join(tmp, 'seg.safetensors');
    await writeSafetensors(file, await stateDict(seg, 'module.'), { num_heads: '2' });
    const loaded = await loadGroundingModule(rt, sd, file, 64);
    expect(loaded.prefix).toBe('module.');
    expect(loaded.config).toEqual(seg.config);
    const want = namedParams(seg);
    for (const [name, p] of namedParams(loaded.module)) {
      expect(Buffer.from((await p.t.toArray()).buffer).equals(Buffer.from((await want.get(name)?.t.toArray() ?? new Float32Array()).buffer)), name).toBe(true);
    }
    disposeParams(loaded.module);

    const bare = join(tmp, 'bare.safetensors');
    await writeSafetensors(bare, await stateDict(seg, ''));
    const official = await loadGroundingModule(rt, sd, bare, 64);
    expect(official.prefix).toBe('');
    expect(official.config).toEqual({ ...seg.config, num_heads: 8 });
    disposeParams(official.module);
    disposeParams(seg);
  });

  it('refuses a module for another UNet, a file that is no module, and bad metadata, naming the file', async () => {
    const { rt, sd } = await tiny();
    const cfg = groundingConfigFor(sd, 64, TINY_GROUNDING_WIDTHS);
    const other = new Segmodule({ ...cfg, feature_channels: { ...cfg.feature_channels, low: cfg.feature_channels.low.map((c) => c * 2) } });
    other.initRandom(rt, 1);
    const file = join(tmp, 'other.safetensors');
    await writeSafetensors(file, await stateDict(other, ''));
    await expect(loadGroundingModule(rt, sd, file, 64)).rejects.toThrow(WeightError);
    await expect(loadGroundingModule(rt, sd, file, 64)).rejects.toThrow(/other\.safetensors does not fit this model: its low features have 256 channels, this UNet's low taps give 128/);

    const none = join(tmp, 'none.safetensors');
    await writeSafetensors(none, { 'unet.conv_in.weight': { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
    await expect(loadGroundingModule(rt, sd, none, 64)).rejects.toThrow(/none\.safetensors has no 'to_q\.weight' tensor, so it is not a grounding module/);

    const seg = randomGroundingModule(rt, sd, 64, 2);
    const heads = join(tmp, 'heads.safetensors');
    await writeSafetensors(heads, await stateDict(seg, ''), { num_heads: 'two' });
    await expect(loadGroundingModule(rt, sd, heads, 64)).rejects.toThrow(/metadata num_heads 'two' must be a positive integer/);
    const partial = await stateDict(seg, '');
    delete partial['transfromer_decoder.layers.0.linear1.weight'];
    const cut = join(tmp, 'cut.safetensors');
    await writeSafetensors(cut, partial);
    await expect(loadGroundingModule(rt, sd, cut, 64)).rejects.toThrow(/cut\.safetensors has no 'transfromer_decoder\.layers\.0\.linear1\.weight'/);
    disposeParams(seg);
    disposeParams(other);
  });
});

describe('DAAM without a grounding module', () => {
  it('equals generateGrounded\'s DAAM and image on the same seed and schedule', async () => {
    const { rt, sd } = await tiny();
    const seg = randomGroundingModule(rt, sd, 64, 3);
    const prompt = 'a photograph of a dog and a cat';
    const words = ['dog', 'cat', 'photograph'];
    const stages: string[] = [];
    const d = await generateWithDaam(sd, { prompt, steps: 3, seed: 4, batch: 2, height: 64, width: 64, scheduler: 'ddim', words, onProgress: (p) => stages.push(`${p.stage}:${p.step}/${p.total}`) });
    expect(stages).toEqual(['text:1/1', 'denoise:1/3', 'denoise:2/3', 'denoise:3/3', 'vae:1/1', 'daam:1/2', 'daam:2/2']);
    const g = await generateGrounded(sd, seg, { prompt, steps: 3, seed: 4, batch: 2, daam: true, daamWords: words, batchNorm: 'eval' });
    expect(d.settings.timesteps).toEqual(g.settings.timesteps);
    for (let b = 0; b < 2; b++) {
      expectClose(d.images[b].rgb, g.images[b].rgb, { label: `image ${b}`, relL2: 1e-6 });
      expect(d.images[b].daam.map((w) => w.word)).toEqual(words);
      d.images[b].daam.forEach((w, k) => {
        const ref = g.images[b].daam?.[k];
        expect(w.mergeIndices).toEqual(ref?.mergeIndices);
        expectClose(w.heatmap, ref?.heatmap ?? [], { label: `daam ${b} ${w.word}`, relL2: 1e-5 });
      });
    }
    disposeParams(seg);
  });

  it('maps every prompt word by default; refuses words that are not in the prompt', async () => {
    const { sd } = await tiny();
    expect(promptWords('A photograph of a dog, and a "cat".')).toEqual(['a', 'photograph', 'of', 'dog', 'and', 'cat']);
    const r = await generateWithDaam(sd, { prompt: 'a red cube', steps: 1, height: 64, width: 64 });
    expect(r.images[0].daam.map((w) => w.word)).toEqual(['a', 'red', 'cube']);
    expect(r.settings.scheduler).toBe(sd.defaultScheduler);
    await expect(generateWithDaam(sd, { prompt: 'a red cube', steps: 1, height: 64, width: 64, words: ['sphere'] })).rejects.toThrow(/DAAM word 'sphere' does not occur in the prompt/);
    await expect(generateWithDaam(sd, { prompt: ' ', steps: 1, height: 64, width: 64 })).rejects.toThrow(/prompt must be a non-empty string/);
  });
});
