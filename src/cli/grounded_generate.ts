// `grounded-sd generate --grounding CKPT` and/or `--daam`: per image a folder
// OUT/<seed>_<index>/ with image.png, masks/, overlay.png, heatmaps/ + daam_masks/ (with
// --daam) and result.json (io/render/result_folder.ts). `--daam` alone runs DAAM without a
// grounding module. `--model tiny` is the built-in tiny random-weight SD and `--grounding
// tiny` a random module fitting it. Progress on stderr, one result folder per line on stdout.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../gpu/errors.js';
import { Runtime } from '../gpu/runtime.js';
import { checkWritable } from '../io/writable.js';
import { uniqueFileNames } from '../io/render/names.js';
import { MODEL_DTYPES } from '../models/precision.js';
import type { SchedulerName } from '../models/schedulers/index.js';
import { classesFromPrompt } from '../pipeline/grounded.js';
import { promptWords } from '../pipeline/daam_generate.js';
import { choiceOption, joinNegativeValues, numberOption, type NumberSpec } from './args.js';
import { runGrounded, type GroundedRunSpec } from './grounded_run.js';

export const GROUNDED_USAGE =
  'grounded-sd generate --model PATH|tiny (--grounding CKPT|tiny [--classes a,b] | --daam) --prompt TEXT [--daam]\n' +
  '                     [--negative TEXT] [--steps 50] [--guidance 7.5] [--seed 0] [--batch 1] [--size N]\n' +
  '                     [--feature-step T] [--bn official|eval] [--threshold 0.5] [--scheduler NAME] [--tokenizer DIR] [--out out/]\n' +
  '                     [--dtype f32|f16]';

export const GROUNDED_HELP = [
  '  --grounding CKPT  grounding module: the official checkpoint (.pth, or converted to .safetensors) or one from',
  '                    `grounded-sd train`; `tiny` = a random module fitting `--model tiny` (see weights/README.md)',
  '  --classes a,b     classes to segment (default: read from "a photograph of a X [and a Y]"); each must be in the prompt',
  '  --daam            DAAM heat maps and masks of every prompt word (works without --grounding)',
  '  --feature-step T  DDPM timestep whose UNet features feed the module (default: the last, 1 for DDIM 50)',
  "  --bn MODE         the module's BatchNorm: official (batch statistics, as the official test.py) or eval",
  '  --threshold P     mask = sigmoid(logit) > P (default 0.5)',
  '  --out DIR         one folder per image: DIR/<seed>_<index>/ (image.png, masks/, overlay.png, heatmaps/, result.json)',
  '  --dtype f32|f16   precision of the SD models (f16 needs shader-f16); the grounding module runs in f32 either way',
].join('\n');

const SCHEDULERS: SchedulerName[] = ['ddim', 'pndm', 'euler', 'dpm++2m'];

const NUMERIC: Record<string, NumberSpec> = {
  steps: { integer: true, min: 1, max: 1000, why: 'SD 1.x schedulers have 1000 training timesteps' },
  guidance: { min: 0, max: 100, why: 'classifier-free guidance scale; SD 1.x uses about 7.5' },
  seed: { integer: true, min: 0, max: 0xffffffff },
  size: { integer: true, min: 8, max: 1 << 20, why: 'pixels, a multiple of 8' },
  height: { integer: true, min: 8, max: 1 << 20, why: 'pixels, a multiple of 8' },
  width: { integer: true, min: 8, max: 1 << 20, why: 'pixels, a multiple of 8' },
  batch: { integer: true, min: 1, max: 64 },
  'feature-step': { integer: true, min: 0, max: 999, why: 'a DDPM timestep of the sampling schedule' },
  threshold: { min: 0, max: 1 },
};

/** True when a generate command line asks for grounding or DAAM (this file's path). */
export function wantsGrounded(argv: readonly string[]): boolean {
  return argv.some((a) => a === '--daam' || a === '--grounding' || a.startsWith('--grounding='));
}

const OPTIONS = {
  model: { type: 'string' }, tiny: { type: 'boolean' }, grounding: { type: 'string' }, classes: { type: 'string' }, daam: { type: 'boolean' },
  prompt: { type: 'string' }, negative: { type: 'string' }, steps: { type: 'string' }, guidance: { type: 'string' }, seed: { type: 'string' },
  batch: { type: 'string' }, size: { type: 'string' }, height: { type: 'string' }, width: { type: 'string' }, 'feature-step': { type: 'string' },
  bn: { type: 'string' }, threshold: { type: 'string' }, scheduler: { type: 'string' }, tokenizer: { type: 'string' }, out: { type: 'string' },
  dtype: { type: 'string' },
} as const;

function side(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const v = numberOption(name, raw, 0, NUMERIC[name]);
  if (v % 8 !== 0) throw new UsageError(`--${name} must be a multiple of 8 (the VAE's 8x downsampling), got ${v}; try ${Math.max(8, Math.round(v / 8) * 8)}`);
  return v;
}

/** The run a generate command line asks for; every option checked, nothing started. */
export function parseGroundedArgs(argv: string[]): GroundedRunSpec {
  const { values } = parseArgs({ args: joinNegativeValues(argv, Object.keys(NUMERIC)), options: OPTIONS, strict: true });
  if (!values.prompt) throw new UsageError('--prompt is required');
  if (values.tiny && values.model !== undefined) throw new UsageError('give --model PATH or --model tiny, not also --tiny');
  const model = values.tiny ? 'tiny' : values.model;
  if (!model) throw new UsageError('--model PATH (or --model tiny) is required');
  if (values.grounding === '') throw new UsageError('--grounding needs a checkpoint path (or tiny)');
  if (values.grounding === 'tiny' && model !== 'tiny') {
    throw new UsageError('--grounding tiny is a random module for --model tiny only; give a grounding checkpoint trained for this model (see weights/README.md)');
  }
  const grounding = values.grounding ?? null;
  if (!grounding && values.classes !== undefined) throw new UsageError('--classes needs --grounding (DAAM maps every prompt word)');
  for (const k of ['feature-step', 'bn', 'threshold'] as const) if (!grounding && values[k] !== undefined) throw new UsageError(`--${k} needs --grounding`);
  const classes = values.classes?.split(',').map((c) => c.trim());
  if (classes && classes.some((c) => c === '')) throw new UsageError(`--classes '${values.classes}' has an empty name; separate class names with commas, e.g. --classes dog,cat`);
  const size = side('size', values.size);
  const height = side('height', values.height) ?? size;
  const width = side('width', values.width) ?? size;
  if (grounding && height !== undefined && width !== undefined && height !== width) {
    throw new UsageError(`--height ${height} and --width ${width} differ; the grounding module needs square images (use --size)`);
  }
  const threshold = numberOption('threshold', values.threshold, 0.5, NUMERIC.threshold);
  if (threshold <= 0 || threshold >= 1) throw new UsageError(`--threshold must be strictly between 0 and 1, got ${values.threshold}`);
  const spec: GroundedRunSpec = {
    model, tokenizer: values.tokenizer, grounding, daam: values.daam ?? false, deprecatedTiny: values.tiny ?? false,
    prompt: values.prompt, negativePrompt: values.negative ?? '', classes,
    steps: numberOption('steps', values.steps, 50, NUMERIC.steps),
    guidanceScale: numberOption('guidance', values.guidance, 7.5, NUMERIC.guidance),
    seed: numberOption('seed', values.seed, 0, NUMERIC.seed),
    batch: numberOption('batch', values.batch, 1, NUMERIC.batch),
    height, width,
    featureTimestep: values['feature-step'] === undefined ? undefined : numberOption('feature-step', values['feature-step'], 0, NUMERIC['feature-step']),
    batchNorm: choiceOption('bn', values.bn, ['official', 'eval'] as const) ?? 'official',
    threshold,
    scheduler: choiceOption('scheduler', values.scheduler, SCHEDULERS),
    out: values.out ?? 'out',
    dtype: choiceOption('dtype', values.dtype, MODEL_DTYPES) ?? 'f32',
  };
  return spec;
}

/** Every file a run will write, checked before any work (no model is built first). The
 *  classes come from --classes or the prompt template, as the pipeline reads them. */
export function checkOutputs(spec: GroundedRunSpec): string[] {
  const folders = Array.from({ length: spec.batch }, (_, b) => join(spec.out, `${spec.seed}_${b}`));
  const classes = spec.grounding ? (spec.classes ?? classesFromPrompt(spec.prompt)) : [];
  const words = spec.daam ? promptWords(spec.prompt) : [];
  const files = ['image.png', 'result.json', ...(classes.length ? ['overlay.png'] : []),
    ...uniqueFileNames(classes, '.png', 'class').map((f) => join('masks', f)),
    ...uniqueFileNames(words, '.png', 'word').flatMap((f) => [join('heatmaps', f), join('daam_masks', f)])];
  checkWritable(folders.flatMap((d) => files.map((f) => join(d, f))), '--out');
  return folders;
}

/** `generate` with --grounding and/or --daam. */
export async function groundedGenerate(argv: string[]): Promise<number> {
  const spec = parseGroundedArgs(argv);
  checkOutputs(spec);
  const rt = await Runtime.create();
  try {
    const folders = await runGrounded(rt, spec, (line) => process.stderr.write(line));
    for (const f of folders) console.log(f);
    return 0;
  } finally {
    rt.destroy();
  }
}
