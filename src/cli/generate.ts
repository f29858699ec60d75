// `grounded-sd generate`: text to PNG images with an SD 1.x model (diffusers folder or
// single-file checkpoint), or with `--model tiny`, the built-in deterministic tiny
// random-weight SD that demonstrates the whole pipeline without any download (`--tiny` is
// its deprecated alias). With --grounding or --daam the run goes to grounded_generate.ts
// (masks, overlay, heat maps, result.json per image). PNGs are written atomically;
// progress (step, rate, ETA) goes to stderr, the written paths to stdout.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../gpu/errors.js';
import { Runtime } from '../gpu/runtime.js';
import { chwToRgba, writePng } from '../io/png.js';
import { checkWritable } from '../io/writable.js';
import { CLIPTextModel } from '../models/clip.js';
import { MODEL_DTYPES } from '../models/precision.js';
import type { SchedulerName } from '../models/schedulers/index.js';
import { StableDiffusion } from '../models/sd.js';
import { UNet2DConditionModel } from '../models/unet/index.js';
import { AutoencoderKL } from '../models/vae/vae.js';
import { generate } from '../pipeline/generate.js';
import { BUILTIN_TINY_CONFIGS } from '../pipeline/grounding_module.js';
import { checkGenerationSize, deviceLimits, generationModel } from '../pipeline/size_check.js';
import { choiceOption, joinNegativeValues, numberOption, type NumberSpec } from './args.js';
import { GROUNDED_HELP, GROUNDED_USAGE, groundedGenerate, wantsGrounded } from './grounded_generate.js';
import type { Command } from './main.js';

const USAGE =
  'grounded-sd generate --model PATH|tiny --prompt TEXT [--negative TEXT] [--steps 50] [--guidance 7.5] [--seed 0]\n' +
  '                     [--size 512 | --height H --width W] [--batch 1] [--scheduler ddim|pndm|euler|dpm++2m]\n' +
  '                     [--tokenizer DIR] [--out out/] [--dtype f32|f16]';

const SCHEDULERS: SchedulerName[] = ['ddim', 'pndm', 'euler', 'dpm++2m'];

/** Numeric options and their bounds. Sides are further checked against the model and
 *  the adapter (pipeline/size_check.ts) before anything is allocated. */
const NUMERIC: Record<string, NumberSpec> = {
  steps: { integer: true, min: 1, max: 1000, why: 'SD 1.x schedulers have 1000 training timesteps' },
  guidance: { min: 0, max: 100, why: 'classifier-free guidance scale; SD 1.x uses about 7.5' },
  seed: { integer: true, min: 0, max: 0xffffffff },
  size: { integer: true, min: 8, max: 1 << 20, why: 'pixels, a multiple of 8' },
  height: { integer: true, min: 8, max: 1 << 20, why: 'pixels, a multiple of 8' },
  width: { integer: true, min: 8, max: 1 << 20, why: 'pixels, a multiple of 8' },
  batch: { integer: true, min: 1, max: 64 },
};

function side(name: string, raw: string | undefined, fallback: number): number {
  const v = numberOption(name, raw, fallback, NUMERIC[name]);
  if (v % 8 !== 0) throw new UsageError(`--${name} must be a multiple of 8 (the VAE's 8x downsampling), got ${v}; try ${Math.max(8, Math.round(v / 8) * 8)}`);
  return v;
}

function seconds(s: number): string {
  return s >= 60 ? `${Math.floor(s / 60)}m${Math.round(s % 60).toString().padStart(2, '0')}s` : `${s.toFixed(1)}s`;
}

/** The tiny models built without weights (cheap: no GPU memory), for the size check. */
function tinyModels() {
  const c = BUILTIN_TINY_CONFIGS;
  return { textEncoder: new CLIPTextModel(c.text_encoder), unet: new UNet2DConditionModel(c.unet), vae: new AutoencoderKL(c.vae) };
}

export const generateCommand: Command = {
  summary: 'generate images (and with --grounding, masks) from a prompt with an SD 1.x model (or --model tiny)',
  usage: `${USAGE}\n${GROUNDED_USAGE}\n\n` + [
    '  --model PATH      diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/) or single-file .safetensors',
    '  --model tiny      the built-in tiny random-weight SD (no download; pictures are noise; --tiny is a deprecated alias)',
    '  --tokenizer DIR   vocab.json + merges.txt for single-file checkpoints',
    '  --size N          square images (default 512; 64 with --model tiny); --height/--width for other shapes',
    '  --scheduler NAME  default: the model\'s scheduler config (PNDM for SD 1.5)',
    '  --out DIR         where <seed>_<row>.png files go (default out/)',
    '  --dtype f32|f16   precision of the models (default f32); f16 halves weight and activation memory and needs',
    '                    the adapter\'s shader-f16 (accumulation, norm statistics, softmax and the scheduler stay f32)',
    GROUNDED_HELP,
  ].join('\n'),
  async run(argv) {
    if (wantsGrounded(argv)) return groundedGenerate(argv);
    const { values } = parseArgs({
      args: joinNegativeValues(argv, Object.keys(NUMERIC)),
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
        dtype: { type: 'string' },
      },
    });
    if (!values.prompt) throw new UsageError('--prompt is required');
    if (values.tiny && values.model !== undefined) throw new UsageError('give --model PATH or --model tiny, not also --tiny');
    if (!values.model && !values.tiny) throw new UsageError('--model PATH (or --model tiny) is required');
    const tiny = values.tiny === true || values.model === 'tiny';
    const scheduler = choiceOption('scheduler', values.scheduler, SCHEDULERS);
    const size = side('size', values.size, tiny ? 64 : 512);
    const height = side('height', values.height, size);
    const width = side('width', values.width, size);
    const steps = numberOption('steps', values.steps, 50, NUMERIC.steps);
    const seed = numberOption('seed', values.seed, 0, NUMERIC.seed);
    const batchSize = numberOption('batch', values.batch, 1, NUMERIC.batch);
    const guidanceScale = numberOption('guidance', values.guidance, 7.5, NUMERIC.guidance);
    const dtype = choiceOption('dtype', values.dtype, MODEL_DTYPES) ?? 'f32';
    // Every output must be creatable before minutes of sampling, not after.
    const outDir = values.out ?? 'out';
    const paths = Array.from({ length: batchSize }, (_, b) => join(outDir, `${seed}_${b}.png`));
    checkWritable(paths, '--out');
    const request = { height, width, batchSize };

    const rt = await Runtime.create();
    try {
      const t0 = performance.now();
      // The size is checked against the model's configs and the adapter before any
      // weight is read or allocated.
      const limits = deviceLimits(rt);
      const check = (models: Parameters<typeof generationModel>[0]) => checkGenerationSize(generationModel(models, dtype), request, limits);
      let sd: StableDiffusion;
      if (tiny) {
        check(tinyModels());
        if (values.tiny) process.stderr.write('grounded-sd: --tiny is deprecated; use --model tiny\n');
        sd = StableDiffusion.random(rt, BUILTIN_TINY_CONFIGS, 0, { dtype });
      } else {
        sd = await StableDiffusion.load(rt, values.model as string, { dtype, tokenizerDir: values.tokenizer, beforeWeights: check });
      }
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
        await writePng(paths[b], chwToRgba(pixels, b * per, 3, height, width), width, height);
        console.log(paths[b]);
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
