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
import { execFileSync } from 'node:child_process';
import { InputError } from '../../src/gpu/errors.js';
import { TINY_CONFIGS } from '../../src/models/sd.js';
import { namedParams, type Module } from '../../src/nn/module.js';

const golden = goldenDir();
const G = golden ?? '';
const tmp = mkdtempSync(join(tmpdir(), 'gsd-sdweights-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const FIXTURE: Record<SdComponent, string> = { unet: 'unet_sd', vae: 'vae_sd', text_encoder: 'clip_text' };
const manifest = (c: SdComponent) => JSON.parse(readFileSync(join(G, FIXTURE[c], 'manifest.json'), 'utf8'));
const tokenizer = new HashTokenizer(1000);

type Tensors = Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>;

async function ldmTensors(configs: SdConfigs): Promise<Tensors> {
  const out: Tensors = {};
  const upTypes = configs.unet.up_block_types;
  for (const c of ['unet', 'vae', 'text_encoder'] as SdComponent[]) {
    const f = await SafetensorsFile.open(join(G, FIXTURE[c], 'weights.safetensors'));
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
  it.skipIf(!golden)('loads both layouts to identical outputs that match the references', async () => {
    const rt = await runtime();
    const configs: SdConfigs = { unet: manifest('unet').config, vae: manifest('vae').config, text_encoder: manifest('text_encoder').config_args, scheduler: {} };
    const folder = join(tmp, 'diffusers');
    mkdirSync(folder);
    writeFileSync(join(folder, 'model_index.json'), JSON.stringify({ _class_name: 'StableDiffusionPipeline' }));
    const files: Record<SdComponent, string> = { unet: 'diffusion_pytorch_model', vae: 'diffusion_pytorch_model', text_encoder: 'model' };
    const cfg: Record<SdComponent, unknown> = { unet: configs.unet, vae: configs.vae, text_encoder: manifest('text_encoder').config };
    for (const c of ['unet', 'vae', 'text_encoder'] as SdComponent[]) {
      mkdirSync(join(folder, c));
      copyFileSync(join(G, FIXTURE[c], 'weights.safetensors'), join(folder, c, `${files[c]}.safetensors`));
      writeFileSync(join(folder, c, 'config.json'), JSON.stringify(cfg[c]));
    }
    const single = join(tmp, 'sd-ldm.safetensors');
    await writeSafetensors(single, await ldmTensors(configs));

    const fromFolder = await StableDiffusion.load(rt, folder, { tokenizer });
    const fromFile = await StableDiffusion.load(rt, single, { tokenizer, configs });

    const unetIo = await SafetensorsFile.open(join(G, 'unet_sd', 'io.safetensors'));
    const vaeIo = await SafetensorsFile.open(join(G, 'vae_sd', 'io.safetensors'));
    const clipIo = await SafetensorsFile.open(join(G, 'clip_text', 'io.safetensors'));
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

  it.skipIf(!golden)('names a missing, an unexpected and a mis-shaped tensor, and a truncated file', async () => {
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

describe('SD weights: bad files get one clear error (tiny random-weight folders)', () => {
  const files: Record<SdComponent, string> = { unet: 'diffusion_pytorch_model', vae: 'diffusion_pytorch_model', text_encoder: 'model' };
  let reference: Promise<Record<SdComponent, Tensors>> | null = null;
  /** The tiny SD's weights (seeded random), read back per component. */
  const tinyTensors = () => (reference ??= (async () => {
    const rt = await runtime();
    const sd = StableDiffusion.random(rt, TINY_CONFIGS, 5);
    const read = async (m: Module) => {
      const out: Tensors = {};
      for (const [name, p] of namedParams(m)) out[name] = { dtype: 'F32', shape: [...p.shape], data: await p.t.toArray() };
      return out;
    };
    const t = { unet: await read(sd.unet), vae: await read(sd.vae), text_encoder: await read(sd.textEncoder) };
    sd.dispose();
    return t;
  })());

  /** A diffusers folder of the tiny SD; `edit` may change tensors, configs (raw JSON
   *  text) or files before they are written. */
  async function folder(name: string, edit: (t: Record<SdComponent, Tensors>, cfg: Record<SdComponent, string>) => void = () => {}): Promise<string> {
    const base = await tinyTensors();
    const t = { unet: { ...base.unet }, vae: { ...base.vae }, text_encoder: { ...base.text_encoder } };
    const cfg = { unet: JSON.stringify(TINY_CONFIGS.unet), vae: JSON.stringify(TINY_CONFIGS.vae), text_encoder: JSON.stringify(TINY_CONFIGS.text_encoder) };
    edit(t, cfg);
    const dir = join(tmp, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'model_index.json'), '{"_class_name": "StableDiffusionPipeline"}');
    for (const c of ['unet', 'vae', 'text_encoder'] as SdComponent[]) {
      mkdirSync(join(dir, c));
      await writeSafetensors(join(dir, c, `${files[c]}.safetensors`), t[c]);
      writeFileSync(join(dir, c, 'config.json'), cfg[c]);
    }
    return dir;
  }

  async function loadError(path: string): Promise<Error> {
    const rt = await runtime();
    const err = await StableDiffusion.load(rt, path, { tokenizer }).then((sd) => {
      sd.dispose();
      return null;
    }, (e: unknown) => e);
    expect(err, `loading ${path} must fail`).toBeInstanceOf(Error);
    return err as Error;
  }

  it('a well-formed tiny folder loads bit-identically (the baseline for the cases below)', async () => {
    const rt = await runtime();
    const dir = await folder('ok');
    const sd = await StableDiffusion.load(rt, dir, { tokenizer });
    const ref = await tinyTensors();
    for (const [m, c] of [[sd.unet, 'unet'], [sd.vae, 'vae'], [sd.textEncoder, 'text_encoder']] as const) {
      for (const [name, p] of namedParams(m)) expect(Array.from(await p.t.toArray()), `${c} ${name}`).toEqual(Array.from(ref[c][name].data));
    }
    sd.dispose();
  });

  it('a weight with the right element count but a transposed or padded shape is a mismatch', async () => {
    const fc1 = 'text_model.encoder.layers.0.mlp.fc1.weight';
    const transposed = await folder('transposed', (t) => {
      const w = t.text_encoder[fc1];
      t.text_encoder[fc1] = { ...w, shape: [w.shape[1], w.shape[0]] };
    });
    const err = await loadError(transposed);
    expect(err).toBeInstanceOf(WeightError);
    expect(err.message).toMatch(/1 shape mismatch/);
    expect(err.message).toContain(`shape mismatch (1): ${fc1}: expected [37,32], found [32,37]`);
    const bias = await folder('bias_2d', (t) => {
      const b = t.unet['conv_in.bias'];
      t.unet['conv_in.bias'] = { ...b, shape: [b.shape[0], 1] };
    });
    expect((await loadError(bias)).message).toContain('conv_in.bias: expected [32], found [32,1]');
  });

  it('a 1x1 conv weight still loads into a Linear ([C, C, 1, 1] -> [C, C], as LDM stores VAE attention)', async () => {
    const rt = await runtime();
    const name = 'decoder.mid_block.attentions.0.to_q.weight';
    const dir = await folder('conv1x1', (t) => {
      t.vae[name] = { ...t.vae[name], shape: [...t.vae[name].shape, 1, 1] };
    });
    const sd = await StableDiffusion.load(rt, dir, { tokenizer });
    const p = namedParams(sd.vae).get(name);
    expect(p?.t.shape).toEqual((await tinyTensors()).vae[name].shape);
    expect(Array.from(await (p as NonNullable<typeof p>).t.toArray())).toEqual(Array.from((await tinyTensors()).vae[name].data));
    sd.dispose();
  });

  it('a NaN weight is refused naming the file, tensor and element (it would give a black image)', async () => {
    const name = 'decoder.conv_out.weight';
    const dir = await folder('nan', (t) => {
      const data = Float32Array.from(t.vae[name].data);
      data[7] = NaN;
      t.vae[name] = { ...t.vae[name], data };
    });
    const err = await loadError(dir);
    expect(err).toBeInstanceOf(WeightError);
    expect(err.message).toContain(join(dir, 'vae', 'diffusion_pytorch_model.safetensors'));
    expect(err.message).toMatch(/tensor 'decoder\.conv_out\.weight' F32\[3,16,3,3\]: element 7 is NaN/);
  });

  it('config.json holding null, an array, a number or bad values is refused, naming the file', async () => {
    for (const [i, text] of ['null', '[1, 2]', '3', '"unet"'].entries()) {
      const dir = await folder(`cfg_${i}`, (_, cfg) => {
        cfg.unet = text;
      });
      const err = await loadError(dir);
      expect(err, text).toBeInstanceOf(InputError);
      expect(err.message).toContain(`${join(dir, 'unet', 'config.json')} must hold a JSON object of config keys, found`);
    }
    const blocks = await folder('cfg_blocks', (_, cfg) => {
      cfg.unet = JSON.stringify({ ...TINY_CONFIGS.unet, down_block_types: ['CrossAttnDownBlock2D', 'SimpleDownBlock'] });
    });
    const err = await loadError(blocks);
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(new RegExp(`^${join(blocks, 'unet', 'config.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid UNet2DConditionModel config:[^]*down_block_types\\[1\\] = "SimpleDownBlock"`));
    const clip = await folder('cfg_clip', (_, cfg) => {
      cfg.text_encoder = JSON.stringify({ ...TINY_CONFIGS.text_encoder, hidden_size: 30 });
    });
    expect((await loadError(clip)).message).toContain(`${join(clip, 'text_encoder', 'config.json')}: invalid CLIPTextConfig: hidden_size 30 is not divisible by num_attention_heads 4`);
  });

  it('the wrong model in a folder: counts, the first names, and what the file looks like, in a few lines', async () => {
    const swapped = await folder('swapped', (t) => {
      t.unet = t.vae;
    });
    const err = await loadError(swapped);
    expect(err).toBeInstanceOf(WeightError);
    const lines = err.message.split('\n');
    expect(lines.length).toBeLessThanOrEqual(4);
    const ref = await tinyTensors();
    const nUnet = Object.keys(ref.unet).length;
    const nVae = Object.keys(ref.vae).length;
    expect(lines[0]).toContain(`weights in ${join(swapped, 'unet', 'diffusion_pytorch_model.safetensors')} do not match UNet2DConditionModel (${nUnet} tensors)`);
    expect(lines[0]).toContain(`${nUnet} missing`);
    expect(lines[0]).toContain(`${nVae} unexpected`);
    expect(lines[0]).toContain('the file looks like a VAE (encoder.*, decoder.*)');
    expect(lines[1]).toMatch(new RegExp(`^  missing \\(${nUnet}\\): conv_in\\.weight, conv_in\\.bias, [^]*\\.\\.\\. and ${nUnet - 5} more$`));
    expect(lines[2]).toMatch(new RegExp(`^  unexpected \\(${nVae}\\): encoder\\.conv_in\\.weight, `));
    const clipAsUnet = await folder('clip_as_unet', (t) => {
      t.unet = t.text_encoder;
    });
    expect((await loadError(clipAsUnet)).message).toContain('looks like a CLIP text encoder (text_model.*)');
  });

  it('beforeWeights sees the built models before any weight is read', async () => {
    const rt = await runtime();
    // A NaN weight would fail the load; the hook's error comes first, so no weight was read.
    const dir = await folder('before_weights', (t) => {
      const data = Float32Array.from(t.text_encoder['text_model.final_layer_norm.weight'].data).fill(NaN);
      t.text_encoder['text_model.final_layer_norm.weight'] = { ...t.text_encoder['text_model.final_layer_norm.weight'], data };
    });
    const seen: string[] = [];
    const err = await StableDiffusion.load(rt, dir, {
      tokenizer,
      beforeWeights: ({ unet, vae, textEncoder }) => {
        seen.push(`${unet.resolved.blockOut.join(',')} ${vae.config.block_out_channels.join(',')} ${textEncoder.constructor.name}`);
        throw new InputError('too big');
      },
    }).catch((e: unknown) => e);
    expect(seen).toEqual([`${TINY_CONFIGS.unet.block_out_channels.join(',')} ${TINY_CONFIGS.vae.block_out_channels?.join(',')} CLIPTextModel`]);
    expect(err).toEqual(new InputError('too big'));
    expect((await loadError(dir)).message).toMatch(/'text_model\.final_layer_norm\.weight' F32\[32\]: element 0 is NaN/);
  });

  it('a FIFO in place of a config or a weights file is refused instead of hanging', async () => {
    const cfgFifo = await folder('fifo_cfg');
    rmSync(join(cfgFifo, 'unet', 'config.json'));
    execFileSync('mkfifo', [join(cfgFifo, 'unet', 'config.json')]);
    const a = await loadError(cfgFifo);
    expect(a).toBeInstanceOf(InputError);
    expect(a.message).toContain(`${join(cfgFifo, 'unet', 'config.json')} is not a regular file (it is a named pipe (FIFO))`);
    const wFifo = await folder('fifo_weights');
    const w = join(wFifo, 'vae', 'diffusion_pytorch_model.safetensors');
    rmSync(w);
    execFileSync('mkfifo', [w]);
    const b = await loadError(wFifo);
    expect(b).toBeInstanceOf(WeightError);
    expect(b.message).toContain(`${w} is not a regular file (it is a named pipe (FIFO))`);
  }, 30_000);

  it('a single file without LDM names says what it looks like instead', async () => {
    const vaeOnly = join(tmp, 'vae-only.safetensors');
    await writeSafetensors(vaeOnly, (await tinyTensors()).vae);
    const err = await loadError(vaeOnly);
    expect(err).toBeInstanceOf(WeightError);
    expect(err.message).toBe(`${vaeOnly} has no unet tensors under the LDM single-file names (model.diffusion_model.*); it looks like a VAE (encoder.*, decoder.*): give an SD 1.x single-file checkpoint or a diffusers folder`);
  });
});
