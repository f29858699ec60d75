// SD weight loading, both layouts: from the golden fixtures' weights (unet_sd, vae_sd,
// clip_text) the test builds a diffusers folder and a single-file checkpoint under the
// original LDM names (VAE attention weights as [C, C, 1, 1] convs), loads both through
// StableDiffusion.load, and requires identical outputs (UNet noise_pred, VAE decode, CLIP
// last_hidden_state), each also within the fixture tolerance of the PyTorch reference.
// Then: a missing, an unexpected and a mis-shaped tensor, and a truncated file, each
// reported by name.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WeightError } from '../../src/gpu/errors.js';
import { diffusersToLdm, type SdComponent } from '../../src/io/ldm_keys.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { HashTokenizer, StableDiffusion, type SdConfigs } from '../../src/models/sd.js';
import { goldenDir, runtime } from '../helpers.js';

const golden = goldenDir();
const tmp = mkdtempSync(join(tmpdir(), 'gsd-sdweights-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const FIXTURE: Record<SdComponent, string> = { unet: 'unet_sd', vae: 'vae_sd', text_encoder: 'clip_text' };
const manifest = (c: SdComponent) => JSON.parse(readFileSync(join(golden as string, FIXTURE[c], 'manifest.json'), 'utf8'));
const tokenizer = new HashTokenizer(1000);

type Tensors = Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>;

async function ldmTensors(configs: SdConfigs): Promise<Tensors> {
  const out: Tensors = {};
  const upTypes = configs.unet.up_block_types;
  for (const c of ['unet', 'vae', 'text_encoder'] as SdComponent[]) {
    const f = await SafetensorsFile.open(join(golden as string, FIXTURE[c], 'weights.safetensors'));
    for (const [name, info] of f.tensors) {
      const to = diffusersToLdm(c, name, undefined, (b) => upTypes[b] === 'CrossAttnUpBlock2D');
      expect(to, `${c} ${name} has an LDM name`).not.toBeNull();
      // LDM's VAE attention q/k/v/proj_out are 1x1 convs.
      const conv = c === 'vae' && /attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$/.test(name);
      out[to as string] = { dtype: 'F32', shape: conv ? [...info.shape, 1, 1] : [...info.shape], data: await f.readF32(name) };
    }
    await f.close();
  }
  return out;
}

describe('SD weights: diffusers folder vs single-file LDM checkpoint', () => {
  it('loads both layouts to identical outputs that match the references', async () => {
    if (!golden) return;
    const rt = await runtime();
    const configs: SdConfigs = { unet: manifest('unet').config, vae: manifest('vae').config, text_encoder: manifest('text_encoder').config_args, scheduler: {} };
    const folder = join(tmp, 'diffusers');
    mkdirSync(folder);
    writeFileSync(join(folder, 'model_index.json'), JSON.stringify({ _class_name: 'StableDiffusionPipeline' }));
    const files: Record<SdComponent, string> = { unet: 'diffusion_pytorch_model', vae: 'diffusion_pytorch_model', text_encoder: 'model' };
    const cfg: Record<SdComponent, unknown> = { unet: configs.unet, vae: configs.vae, text_encoder: manifest('text_encoder').config };
    for (const c of ['unet', 'vae', 'text_encoder'] as SdComponent[]) {
      mkdirSync(join(folder, c));
      copyFileSync(join(golden, FIXTURE[c], 'weights.safetensors'), join(folder, c, `${files[c]}.safetensors`));
      writeFileSync(join(folder, c, 'config.json'), JSON.stringify(cfg[c]));
    }
    const single = join(tmp, 'sd-ldm.safetensors');
    await writeSafetensors(single, await ldmTensors(configs));

    const fromFolder = await StableDiffusion.load(rt, folder, { tokenizer });
    const fromFile = await StableDiffusion.load(rt, single, { tokenizer, configs });

    const unetIo = await SafetensorsFile.open(join(golden, 'unet_sd', 'io.safetensors'));
    const vaeIo = await SafetensorsFile.open(join(golden, 'vae_sd', 'io.safetensors'));
    const clipIo = await SafetensorsFile.open(join(golden, 'clip_text', 'io.safetensors'));
    const ids = Array.from(await clipIo.readI64('input_ids'), Number);
    const L = 77;
    const rows = [ids.slice(0, L), ids.slice(L, 2 * L)];
    const timesteps = Array.from(await unetIo.readF32('timesteps'));
    const sample = await unetIo.toTensor(rt, 's16x16.sample');
    const ehs = await unetIo.toTensor(rt, 'encoder_hidden_states');
    const latent = await vaeIo.toTensor(rt, 'decode_8x8.latent');

    const run = async (sd: StableDiffusion) => {
      const clip = sd.textEncoder.forward(rt, rows);
      const unet = sd.unet.forward(rt, sample, timesteps, ehs);
      const image = sd.vae.decode(rt, latent);
      const out = { clip: await clip.lastHiddenState.toArray(), unet: await unet.sample.toArray(), vae: await image.toArray() };
      for (const t of [clip.lastHiddenState, clip.pooled, unet.sample, image]) t.dispose();
      return out;
    };
    const a = await run(fromFolder);
    const b = await run(fromFile);
    const refs = { clip: await clipIo.readF32('last_hidden_state'), unet: await unetIo.readF32('s16x16.noise_pred'), vae: await vaeIo.readF32('decode_8x8.image') };
    for (const k of ['clip', 'unet', 'vae'] as const) {
      expect(Buffer.from(a[k].buffer).equals(Buffer.from(b[k].buffer)), `${k}: folder and single file give identical outputs`).toBe(true);
      const maxRef = refs[k].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const maxDiff = a[k].reduce((m, v, i) => Math.max(m, Math.abs(v - refs[k][i])), 0);
      expect(a[k].length).toBe(refs[k].length);
      expect(maxDiff / maxRef, `${k} rel_max vs reference`).toBeLessThan(1e-4);
    }
    for (const t of [sample, ehs, latent]) t.dispose();
    fromFolder.dispose();
    fromFile.dispose();
    for (const f of [unetIo, vaeIo, clipIo]) await f.close();
  });

  it('names a missing, an unexpected and a mis-shaped tensor, and a truncated file', async () => {
    if (!golden) return;
    const rt = await runtime();
    const configs: SdConfigs = { unet: manifest('unet').config, vae: manifest('vae').config, text_encoder: manifest('text_encoder').config_args, scheduler: {} };
    const base = await ldmTensors(configs);
    const variant = async (name: string, edit: (t: Tensors) => void) => {
      const t = { ...base };
      edit(t);
      const path = join(tmp, `${name}.safetensors`);
      await writeSafetensors(path, t);
      return path;
    };
    const load = (path: string) => StableDiffusion.load(rt, path, { tokenizer, configs });

    const missing = await variant('missing', (t) => delete t['model.diffusion_model.input_blocks.1.1.proj_in.weight']);
    await expect(load(missing)).rejects.toThrow(/missing \(1\):\s+down_blocks\.0\.attentions\.0\.proj_in\.weight/);

    const extra = await variant('extra', (t) => {
      t['first_stage_model.decoder.mid.block_1.extra.weight'] = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
    });
    await expect(load(extra)).rejects.toThrow(/unexpected \(1\):\s+decoder\.mid_block\.resnets\.0\.extra\.weight/);

    const shaped = await variant('shaped', (t) => {
      const w = t['cond_stage_model.transformer.text_model.final_layer_norm.weight'];
      t['cond_stage_model.transformer.text_model.final_layer_norm.weight'] = { ...w, shape: [w.shape[0] - 1], data: w.data.subarray(0, w.shape[0] - 1) };
    });
    await expect(load(shaped)).rejects.toThrow(/shape mismatch \(1\):\s+text_model\.final_layer_norm\.weight: expected \[32\], found \[31\]/);

    const cut = join(tmp, 'truncated.safetensors');
    copyFileSync(await variant('whole', () => {}), cut);
    truncateSync(cut, statSync(cut).size - 1000);
    const err = await load(cut).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeightError);
    expect(String((err as Error).message)).toContain(cut);
    expect(String((err as Error).message)).toMatch(/truncated|past the end|beyond|exceeds/);
  });
});
