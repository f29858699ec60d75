// `grounded-sd generate`: text to PNG images with an SD 1.x model (diffusers folder or
// single-file checkpoint), or with `--tiny`, a deterministic tiny random-weight SD that
// demonstrates the whole pipeline without any download. PNGs are written atomically;
// progress (step, rate, ETA) goes to stderr, the written paths to stdout.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { InputError } from '../gpu/errors.js';
import { Runtime } from '../gpu/runtime.js';
import { chwToRgba, writePng } from '../io/png.js';
import type { SchedulerName } from '../models/schedulers/index.js';
import { StableDiffusion, TINY_CONFIGS } from '../models/sd.js';
import { generate } from '../pipeline/generate.js';
import type { Command } from './main.js';

const USAGE =
  'grounded-sd generate (--model PATH | --tiny) --prompt TEXT [--negative TEXT] [--steps 50] [--guidance 7.5] [--seed 0]\n' +
  '                     [--size 512 | --height H --width W] [--batch 1] [--scheduler ddim|pndm|euler|dpm++2m]\n' +
  '                     [--tokenizer DIR] [--out out/] [--f16]';

const SCHEDULERS: SchedulerName[] = ['ddim', 'pndm', 'euler', 'dpm++2m'];

function int(name: string, v: string | undefined, fallback: number, min: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InputError(`--${name} needs an integer >= ${min}, got '${v}'`);
  return n;
}

function seconds(s: number): string {
  return s >= 60 ? `${Math.floor(s / 60)}m${Math.round(s % 60).toString().padStart(2, '0')}s` : `${s.toFixed(1)}s`;
}

export const generateCommand: Command = {
  summary: 'generate images from a prompt with an SD 1.x model (or --tiny random weights)',
  usage: `${USAGE}\n\n` + [
    '  --model PATH      diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/) or single-file .safetensors',
    '  --tiny            tiny deterministic random-weight SD (no download; prompts are hashed into its vocabulary)',
    '  --tokenizer DIR   vocab.json + merges.txt for single-file checkpoints',
    '  --size N          square images (default 512; 64 with --tiny); --height/--width for other shapes',
    '  --scheduler NAME  default: the model\'s scheduler config (PNDM for SD 1.5)',
    '  --out DIR         where <seed>_<row>.png files go (default out/)',
    '  --f16             f16 weights: refused for now (the norm kernels take f32 weights only)',
  ].join('\n'),
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        tiny: { type: 'boolean' },
        tokenizer: { type: 'string' },
        prompt: { type: 'string' },
        negative: { type: 'string' },
        steps: { type: 'string' },
        guidance: { type: 'string' },
        seed: { type: 'string' },
        size: { type: 'string' },
        height: { type: 'string' },
        width: { type: 'string' },
        batch: { type: 'string' },
        scheduler: { type: 'string' },
        out: { type: 'string' },
        f16: { type: 'boolean' },
      },
    });
    if (!values.prompt) throw new InputError(`--prompt is required\nusage: ${USAGE}`);
    if (!values.model === !values.tiny) throw new InputError(`give exactly one of --model PATH or --tiny\nusage: ${USAGE}`);
    const scheduler = values.scheduler as SchedulerName | undefined;
    if (scheduler !== undefined && !SCHEDULERS.includes(scheduler)) throw new InputError(`--scheduler '${scheduler}' is not one of ${SCHEDULERS.join(', ')}`);
    const size = int('size', values.size, values.tiny ? 64 : 512, 8);
    const height = int('height', values.height, size, 8);
    const width = int('width', values.width, size, 8);
    const steps = int('steps', values.steps, 50, 1);
    const seed = int('seed', values.seed, 0, 0);
    const batchSize = int('batch', values.batch, 1, 1);
    const guidanceScale = values.guidance === undefined ? 7.5 : Number(values.guidance);
    if (!Number.isFinite(guidanceScale)) throw new InputError(`--guidance needs a number, got '${values.guidance}'`);
    const outDir = values.out ?? 'out';
    // Storing weights in f16 needs every model kernel to accept them; layer_norm and
    // group_norm take f32 weights only, so refuse clearly instead of failing mid-load.
    if (values.f16) throw new InputError('--f16 is not available yet: the layer_norm/group_norm kernels take f32 weights only; run without --f16');
    const dtype = 'f32';

    const rt = await Runtime.create();
    try {
      const t0 = performance.now();
      const sd = values.tiny
        ? StableDiffusion.random(rt, TINY_CONFIGS, 0, { dtype })
        : await StableDiffusion.load(rt, values.model as string, { dtype, tokenizerDir: values.tokenizer });
      process.stderr.write(`model ready in ${seconds((performance.now() - t0) / 1000)}\n`);
      const start = performance.now();
      const result = await generate(sd, {
        prompt: values.prompt, negativePrompt: values.negative, steps, guidanceScale, seed, height, width, batchSize, scheduler,
        onStep: ({ step, total }) => {
          const elapsed = (performance.now() - start) / 1000;
          const rate = step / elapsed;
          process.stderr.write(`\rstep ${step}/${total}  ${rate >= 1 ? `${rate.toFixed(2)} it/s` : `${(1 / rate).toFixed(2)} s/it`}  ETA ${seconds((total - step) / rate)}   `);
        },
      });
      process.stderr.write(`\nsampled in ${seconds((performance.now() - start) / 1000)}\n`);
      const pixels = await result.images.toArray();
      const per = 3 * height * width;
      for (let b = 0; b < batchSize; b++) {
        const path = join(outDir, `${seed}_${b}.png`);
        await writePng(path, chwToRgba(pixels, b * per, 3, height, width), width, height);
        console.log(path);
      }
      result.images.dispose();
      result.latents.dispose();
      sd.dispose();
      return 0;
    } finally {
      rt.destroy();
    }
  },
};
