// `grounded-sd generate --grounding/--daam` in-process: the tiny model with a random module
// (batch folders, explicit classes, eval BatchNorm), DAAM alone, the deprecated --tiny,
// option errors before any work, and a model folder + grounding checkpoint on disk (built
// from the grounded_tiny fixture's weights) whose result.json carries the files' SHA-256.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { decodePng } from '../../src/io/png.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { goldenDir, requireOrSkip } from '../helpers.js';
import { capture } from './capture.js';

const tmp = mkdtempSync(join(tmpdir(), 'gsd-cli-grounded-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const gen = (...args: string[]) => capture(() => main(['generate', ...args]));

describe('generate --grounding tiny', () => {
  it('a batch of 2 with explicit classes and DAAM: one folder per image, stdout lists them', async () => {
    const out = join(tmp, 'batch');
    const r = await gen('--model', 'tiny', '--grounding', 'tiny', '--prompt', 'a photograph of a potted plant and a cat', '--classes', 'potted plant,cat',
      '--daam', '--batch', '2', '--steps', '2', '--seed', '7', '--bn', 'eval', '--out', out);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([join(out, '7_0'), join(out, '7_1')]);
    expect(r.progress).toMatch(/grounding 2\/2/);
    expect(r.progress).toMatch(/denoise 2\/2 .*ETA/);
    const images: Buffer[] = [];
    for (const [b, dir] of r.out.entries()) {
      const res = json(join(dir, 'result.json'));
      expect(res.index).toBe(b);
      expect(res.classes.map((c: { mask: string }) => c.mask)).toEqual(['masks/potted_plant.png', 'masks/cat.png']);
      expect(res.settings).toMatchObject({ batch: 2, batch_norm: 'eval', steps: 2, daam: true });
      expect(res.daam.map((d: { word: string }) => d.word).slice(0, 2)).toEqual(['potted plant', 'cat']);
      expect(res.daam[0].heatmap).toBe('heatmaps/potted_plant.png');
      images.push(readFileSync(join(dir, 'image.png')));
    }
    expect(images[0].equals(images[1])).toBe(false);
  });

  it('--daam alone: image, heat maps and DAAM masks of every word, no masks or overlay', async () => {
    const out = join(tmp, 'daam');
    const r = await gen('--model', 'tiny', '--daam', '--prompt', 'a red cube', '--steps', '2', '--out', out);
    expect(r.code).toBe(0);
    const dir = join(out, '0_0');
    expect(readdirSync(dir).sort()).toEqual(['daam_masks', 'heatmaps', 'image.png', 'result.json']);
    expect(readdirSync(join(dir, 'heatmaps')).sort()).toEqual(['a.png', 'cube.png', 'red.png']);
    const res = json(join(dir, 'result.json'));
    expect(res).toMatchObject({ classes: [], overlay: null, grounding: null, settings: { mode: 'daam', daam: true, daam_threshold: 0.4, feature_step: null } });
    const hm = decodePng(readFileSync(join(dir, 'heatmaps', 'red.png')));
    expect([hm.width, hm.height]).toEqual([64, 64]);
  });

  it('--dtype f16: the SD models run in f16 (result.json says so), masks and DAAM maps are written', async (ctx) => {
    const out = join(tmp, 'f16');
    const r = await gen('--model', 'tiny', '--grounding', 'tiny', '--daam', '--dtype', 'f16', '--prompt', 'a photograph of a dog', '--steps', '2', '--out', out);
    if (r.err.some((e) => e.includes('shader-f16'))) requireOrSkip(ctx, false, 'the adapter has no shader-f16');
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    const res = json(join(out, '0_0', 'result.json'));
    expect(res.settings).toMatchObject({ dtype: 'f16', mode: 'grounded', daam: true });
    expect(res.classes.map((c: { mask: string }) => c.mask)).toEqual(['masks/dog.png']);
    expect(existsSync(join(out, '0_0', 'heatmaps', 'dog.png'))).toBe(true);
  });

  it('--tiny still works, with a one-line deprecation notice', async () => {
    const r = await gen('--tiny', '--grounding', 'tiny', '--prompt', 'a photograph of a dog', '--steps', '1', '--out', join(tmp, 'old'));
    expect(r.code).toBe(0);
    expect(r.progress.split('\n').filter((l) => l.includes('deprecated'))).toEqual(['grounded-sd: --tiny is deprecated; use --model tiny']);
    expect(json(join(tmp, 'old', '0_0', 'result.json')).classes.map((c: { name: string }) => c.name)).toEqual(['dog']);
  });
});

describe('generate --grounding/--daam: bad options are refused before any work', () => {
  const base = ['--prompt', 'a photograph of a dog', '--out', join(tmp, 'never')];
  for (const [args, message] of [
    [['--model', '/x/sd15', '--grounding', 'tiny'], '--grounding tiny is a random module for --model tiny only; give a grounding checkpoint trained for this model (see weights/README.md)'],
    [['--model', 'tiny', '--daam', '--classes', 'dog'], '--classes needs --grounding (DAAM maps every prompt word)'],
    [['--model', 'tiny', '--daam', '--bn', 'eval'], '--bn needs --grounding'],
    [['--model', 'tiny', '--grounding', 'tiny', '--bn', 'train'], "--bn must be one of official, eval, got 'train'"],
    [['--model', 'tiny', '--grounding', 'tiny', '--height', '64', '--width', '128'], '--height 64 and --width 128 differ; the grounding module needs square images (use --size)'],
    [['--model', 'tiny', '--grounding', 'tiny', '--threshold', '1'], '--threshold must be strictly between 0 and 1, got 1'],
    [['--model', 'tiny', '--grounding', 'tiny', '--classes', 'dog,,cat'], "--classes 'dog,,cat' has an empty name; separate class names with commas, e.g. --classes dog,cat"],
    [['--grounding', 'tiny'], '--model PATH (or --model tiny) is required'],
  ] as const) {
    it(args.join(' '), async () => {
      const r = await gen(...args, ...base);
      expect(r.code).toBe(2);
      expect(r.err[0].split('\n')[0]).toBe(`grounded-sd generate: ${message}`);
      expect(r.progress).toBe('');
    });
  }

  it('a prompt off the templates without --classes, and an --out under a file: exit 1, nothing run', async () => {
    const a = await gen('--model', 'tiny', '--grounding', 'tiny', '--prompt', 'a dog on a mat', '--out', join(tmp, 'never'));
    expect(a.code).toBe(1);
    expect(a.err[0]).toMatch(/^grounded-sd generate: InputError: cannot read the classes from the prompt "a dog on a mat".*classes/);
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    const b = await gen('--model', 'tiny', '--grounding', 'tiny', '--prompt', 'a photograph of a dog', '--out', file);
    expect(b.code).toBe(1);
    expect(b.err[0]).toMatch(/^grounded-sd generate: InputError: --out: .*a-file is a file/);
    for (const r of [a, b]) expect(r.progress).toBe('');
    expect(existsSync(join(tmp, 'never'))).toBe(false);
  });
});

describe('generate with a model folder and a grounding checkpoint on disk', () => {
  it('records the SHA-256 of every weight file read and the module config from the checkpoint', async (ctx) => {
    const g = goldenDir('grounded_tiny');
    const tok = goldenDir('tokenizer');
    requireOrSkip(ctx, g !== null && tok !== null, 'needs the grounded_tiny and tokenizer fixtures');
    if (!g || !tok) return;
    const m = json(join(g, 'manifest.json'));
    // A diffusers folder and a grounding file from the fixture's one weights file.
    const model = join(tmp, 'sd-tiny');
    const src = await SafetensorsFile.open(join(g, 'weights.safetensors'));
    const files: Record<string, string> = { unet: 'diffusion_pytorch_model', vae: 'diffusion_pytorch_model', text_encoder: 'model' };
    try {
      const part = async (prefix: string) => {
        const out: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
        for (const [name, info] of src.tensors) if (name.startsWith(prefix)) out[name.slice(prefix.length)] = { dtype: 'F32', shape: [...info.shape], data: await src.readF32(name) };
        return out;
      };
      for (const c of ['unet', 'vae', 'text_encoder']) {
        mkdirSync(join(model, c), { recursive: true });
        writeFileSync(join(model, c, 'config.json'), JSON.stringify(m.models[c].config ?? m.models[c].config_args));
        await writeSafetensors(join(model, c, `${files[c]}.safetensors`), await part(m.models[c].prefix));
      }
      mkdirSync(join(model, 'tokenizer'));
      for (const f of ['vocab.json', 'merges.txt']) copyFileSync(join(tok, f), join(model, 'tokenizer', f));
      mkdirSync(join(model, 'scheduler'));
      writeFileSync(join(model, 'scheduler', 'scheduler_config.json'), JSON.stringify({ ...m.scheduler.config, _class_name: 'DDIMScheduler' }));
      writeFileSync(join(model, 'model_index.json'), '{}');
      await writeSafetensors(join(tmp, 'grounding.safetensors'), await part(m.models.segmodule.prefix), { num_heads: String(m.models.segmodule.config.num_heads) });
    } finally {
      await src.close();
    }
    const out = join(tmp, 'real');
    const r = await gen('--model', model, '--grounding', join(tmp, 'grounding.safetensors'), '--prompt', m.prompt, '--steps', '2', '--out', out);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    const res = json(join(out, '0_0', 'result.json'));
    const digest = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
    const weightFiles = ['text_encoder/model.safetensors', 'unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors'].map((f) => join(model, ...f.split('/')));
    expect([...res.model.weights].sort((a: { path: string }, b: { path: string }) => a.path.localeCompare(b.path))).toEqual(
      weightFiles.sort().map((p) => ({ path: p, bytes: readFileSync(p).length, sha256: digest(p) })),
    );
    expect(res.grounding.weights).toEqual([{ path: join(tmp, 'grounding.safetensors'), bytes: readFileSync(join(tmp, 'grounding.safetensors')).length, sha256: digest(join(tmp, 'grounding.safetensors')) }]);
    const { dropout_rate: _d, sn_num_svs: _s, ...official } = m.models.segmodule.config;
    expect(res.grounding.config).toEqual(official);
    expect([res.width, res.height]).toEqual(m.image_size);
    expect(res.classes.map((c: { name: string }) => c.name)).toEqual(m.classes);
  });
});
