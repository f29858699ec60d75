// `grounded-sd dataset build|merge`: training data for the grounding module (the paper's
// construction, pipeline/dataset/). `build` generates samples 0..count-1 (or a shard of
// them) into a folder, resumably: rerunning the same command continues where it stopped,
// and SIGINT / SIGTERM stop it after the sample in progress. `merge` joins shard folders.
// Progress goes to stderr, one JSON summary line to stdout.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { InputError, UsageError } from '../gpu/errors.js';
import { Runtime } from '../gpu/runtime.js';
import { checkWritable } from '../io/writable.js';
import { StableDiffusion } from '../models/sd.js';
import { DAAM_THRESHOLD } from '../pipeline/daam.js';
import { ANNOTATORS, buildDataset, datasetAnnotator, datasetVocabulary, mergeDatasets, parseShard, STORAGES, VocInversionAnnotator, type BuildEvent } from '../pipeline/dataset/index.js';
import { BUILTIN_TINY_CONFIGS } from '../pipeline/grounding_module.js';
import { choiceOption, joinNegativeValues, numberOption, type NumberSpec } from './args.js';
import { DETECTOR_ARG_OPTIONS, DETECTOR_NUMERIC, DETECTOR_USAGE_LINES, detectorOptions } from './detector_args.js';
import type { Command } from './main.js';

const BUILD_USAGE =
  'grounded-sd dataset build --model PATH|tiny --vocab voc|coco|FILE [--split 1|2|3|65_15|FILE] --count N --out DIR\n' +
  '                          [--shard i/n] [--annotator daam|masks|detector|ddim-inverse] [--gt DIR|FILE.json] [--voc DIR [--voc-list train]] [--storage regen|f16]\n' +
  '                          [--detector CKPT [--detector-arch v1|v2] [--detector-score 0.05] [--detector-min-size 800] [--detector-max-size 1333]]\n' +
  '                          [--steps 50] [--guidance 5] [--seed 0] [--size N] [--feature-step T] [--daam-threshold 0.4] [--tokenizer DIR]';
const MERGE_USAGE = 'grounded-sd dataset merge OUT IN...';

const NUMERIC: Record<string, NumberSpec> = {
  count: { integer: true, min: 1, max: 2 ** 31, why: 'sample indices stay below 2^31' },
  steps: { integer: true, min: 1, max: 1000, why: 'SD 1.x schedulers have 1000 training timesteps' },
  guidance: { min: 0, max: 100, why: 'classifier-free guidance scale; the official construction uses 5.0' },
  seed: { integer: true, min: 0, max: 0xffffffff },
  size: { integer: true, min: 8, max: 1 << 16, why: 'pixels, a multiple of 8' },
  'feature-step': { integer: true, min: 0, max: 999, why: 'a DDPM timestep of the sampling schedule' },
  'daam-threshold': { min: 0, max: 0.999, why: 'on the min-max normalised DAAM map' },
};

const seconds = (s: number) => (s >= 60 ? `${Math.floor(s / 60)}m${Math.round(s % 60).toString().padStart(2, '0')}s` : `${s.toFixed(1)}s`);

/** Progress lines on stderr. */
function printer(write: (s: string) => void): (e: BuildEvent) => void {
  let spent = 0;
  let done = 0;
  return (e) => {
    if (e.kind === 'plan') write(`${e.planned} samples in this build, ${e.finished} already finished, ${e.todo} to make\n`);
    else if (e.kind === 'warning') write(`warning: ${e.message}\n`);
    else if (e.kind === 'sample') write(`[${e.position + 1}/${e.todo}] ${e.id}: "${e.prompt}" `);
    else {
      spent += e.seconds;
      done++;
      const r = e.record;
      const what = r.status === 'ok' ? `found ${r.classes.filter((_, i) => r.found[i]).join(', ')}` : `skipped (${r.reason})`;
      write(`${what}  ${seconds(e.seconds)}, ETA ${seconds((spent / done) * (e.todo - e.position - 1))}\n`);
    }
  };
}

async function build(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: joinNegativeValues(argv, [...Object.keys(NUMERIC), ...Object.keys(DETECTOR_NUMERIC)]),
    options: {
      model: { type: 'string' }, tokenizer: { type: 'string' }, vocab: { type: 'string' }, split: { type: 'string' },
      count: { type: 'string' }, out: { type: 'string' }, shard: { type: 'string' }, annotator: { type: 'string' }, gt: { type: 'string' },
      storage: { type: 'string' }, steps: { type: 'string' }, guidance: { type: 'string' }, seed: { type: 'string' }, size: { type: 'string' },
      'feature-step': { type: 'string' }, 'daam-threshold': { type: 'string' }, voc: { type: 'string' }, 'voc-list': { type: 'string' }, ...DETECTOR_ARG_OPTIONS,
    },
    strict: true,
  });
  if (!values.model) throw new UsageError('--model PATH or --model tiny is required');
  if (!values.vocab) throw new UsageError('--vocab voc, coco or FILE is required');
  const inverse = values.annotator === 'ddim-inverse';
  if (!values.count && !inverse) throw new UsageError('--count N is required (samples 0..N-1)');
  if (!values.out) throw new UsageError('--out DIR is required');
  const count = values.count === undefined ? undefined : numberOption('count', values.count, 0, NUMERIC.count);
  const num = (k: string) => (values[k as keyof typeof values] === undefined ? undefined : numberOption(k, values[k as keyof typeof values] as string, 0, NUMERIC[k]));
  const steps = num('steps');
  // ddim-inverse: the inversion's guidance, 1 (the conditional prediction) unless given.
  const guidanceScale = num('guidance') ?? (inverse ? 1 : undefined);
  const seed = num('seed');
  const size = num('size');
  if (size !== undefined && size % 8 !== 0) throw new UsageError(`--size must be a multiple of 8 (the VAE's 8x downsampling), got ${size}`);
  const featureTimestep = num('feature-step');
  const daamThreshold = num('daam-threshold');
  const annotatorName = choiceOption('annotator', values.annotator, ANNOTATORS) ?? 'daam';
  const storage = choiceOption('storage', values.storage, STORAGES) ?? 'regen';
  let shard;
  try {
    shard = values.shard === undefined ? undefined : parseShard(values.shard);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (daamThreshold !== undefined && annotatorName !== 'daam') throw new UsageError('--daam-threshold is for --annotator daam');
  const detector = detectorOptions(annotatorName, values);
  // Everything the user gave is checked before the model loads.
  const vocab = datasetVocabulary(values.vocab, values.split);
  checkWritable([join(values.out, 'dataset.json'), join(values.out, 'samples', 'x')], '--out');
  const tiny = values.model === 'tiny';
  if (!tiny && !existsSync(values.model)) throw new InputError(`--model ${values.model} does not exist; give a diffusers folder or a single-file checkpoint, or --model tiny`);
  // The detector loads (and a checkpoint of another architecture is refused) before the
  // SD model, on the Runtime both then share.
  const detRt = detector ? await Runtime.create() : undefined;
  let annotator: Awaited<ReturnType<typeof datasetAnnotator>>;
  try {
    annotator = await datasetAnnotator(annotatorName, { gt: values.gt, classes: vocab.classes, daamThreshold: daamThreshold ?? DAAM_THRESHOLD, voc: values.voc, vocList: values['voc-list'], detector, runtime: detRt });
  } catch (e) {
    detRt?.destroy();
    throw e;
  }

  const write = (s: string) => process.stderr.write(s);
  const stop = new AbortController();
  let signals = 0;
  const onSignal = (sig: string) => {
    signals++;
    if (signals > 1) process.exit(130);
    write(`\n${sig}: stopping after the sample in progress (again to quit at once; finished samples are kept, rerun the same command to continue)\n`);
    stop.abort();
  };
  const onInt = () => onSignal('SIGINT');
  const onTerm = () => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  let sd: StableDiffusion | undefined;
  let rt: Runtime | undefined = detRt;
  try {
    rt ??= await Runtime.create();
    sd = tiny ? StableDiffusion.random(rt, BUILTIN_TINY_CONFIGS, 0) : await StableDiffusion.load(rt, values.model, { tokenizerDir: values.tokenizer });
    if (tiny) write('model: built-in tiny model with random weights (pictures are noise; the data tests the pipeline only)\n');
    const summary = await buildDataset(sd, annotator, {
      out: values.out, model: tiny ? 'tiny' : resolve(values.model), vocab, count: count ?? (annotator as VocInversionAnnotator).length, seed, shard, storage,
      steps, guidanceScale, featureTimestep, size, signal: stop.signal, onEvent: printer(write),
    });
    const perHour = summary.seconds > 0 ? Math.round((3600 * summary.built) / summary.seconds) : null;
    console.log(JSON.stringify({
      out: values.out, shard: values.shard ?? null, planned: summary.planned, resumed: summary.resumed, built: summary.built, skipped: summary.skipped,
      stopped: summary.stopped, bytes: summary.bytes, seconds: Math.round(summary.seconds * 10) / 10, samples_per_hour: perHour,
    }));
    return summary.stopped ? 130 : 0;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    sd?.dispose();
    annotator.dispose?.();
    rt?.destroy();
  }
}

async function merge(argv: string[]): Promise<number> {
  const { positionals } = parseArgs({ args: argv, options: {}, allowPositionals: true, strict: true });
  if (positionals.length < 2) throw new UsageError('give the output folder and at least one input: dataset merge OUT IN...');
  const [out, ...inputs] = positionals;
  checkWritable([join(out, 'dataset.json'), join(out, 'samples', 'x')], 'OUT');
  const s = await mergeDatasets(out, inputs);
  for (const w of s.warnings) process.stderr.write(`warning: ${w}\n`);
  console.log(JSON.stringify({ out, inputs: s.inputs, samples: s.samples, skipped: s.skipped, gaps: s.gaps }));
  return 0;
}

export const datasetCommand: Command = {
  summary: 'build training data for the grounding module (generate, annotate, store; resumable, shardable) or merge shards',
  usage: `${BUILD_USAGE}\n${MERGE_USAGE}\n\n` + [
    'build: samples 0..N-1, prompts "a photograph of a X" / "... of a X and a Y" over the seen classes (half each)',
    '  --model PATH|tiny      SD 1.x diffusers folder or single-file checkpoint; tiny = built-in random model',
    '  --vocab voc|coco|FILE  class vocabulary (FILE: one class per line)',
    '  --split S              voc: 1, 2 or 3 (official); coco: 65_15; or FILE listing the seen classes',
    '  --count N              samples 0..N-1 (a rerun with a larger N extends the dataset)',
    '  --shard i/n            build only indices k with k % n == i (merge the shards with dataset merge)',
    '  --annotator A          daam (DAAM pseudo-labels of the same run; default), masks (--gt) or detector',
    '                         ddim-inverse: real pictures of a PASCAL VOC folder, DDIM-inverted (--voc)',
    '  --gt DIR|FILE.json     masks: a folder <sample id>/<class>.png (binary, sample ids 000000, 000001, ...)',
    '                         or COCO JSON (images named <sample id>.png, categories by class name)',
    ...DETECTOR_USAGE_LINES,
    '  --voc DIR              ddim-inverse: real pictures and label maps of a PASCAL VOC folder (sample i = picture i',
    '                         of the list; --count defaults to the whole list; --guidance is the inversion\'s, default 1)',
    '  --voc-list NAME        ddim-inverse: the list ImageSets/Segmentation/NAME.txt (default train)',
    '  --storage regen|f16    regen (default): latents, timestep, token ids + image and masks; training',
    '                         recomputes the features with one UNet call. f16: the grouped features (large)',
    '  --steps N --guidance G DDIM steps (default 50) and guidance (default 5.0), as the official construction',
    '  --feature-step T       DDPM timestep of the feature call (default: the schedule\'s last, 1)',
    '  --size N               image side (default: the model\'s, 512 for SD 1.x, 64 for tiny)',
    '  --seed S               base seed of the sample plan (default 0)',
    'merge: OUT IN...         join shard folders of one build into OUT (refuses other settings or overlaps)',
  ].join('\n'),
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'build') {
      if (rest[0] === '--help' || rest[0] === '-h') return help(BUILD_USAGE);
      return build(rest);
    }
    if (sub === 'merge') {
      if (rest[0] === '--help' || rest[0] === '-h') return help(MERGE_USAGE);
      return merge(rest);
    }
    throw new UsageError(sub === undefined ? 'give a subcommand: build or merge' : `unknown subcommand '${sub}' (dataset build | dataset merge)`);
  },
};

function help(usage: string): number {
  console.log(`${datasetCommand.summary}\n\nusage: ${usage}\n\n${datasetCommand.usage.split('\n\n')[1]}`);
  return 0;
}
