// `grounded-sd synth`: the paper's Protocol-II synthetic segmentation dataset. Generates N
// images per class and M per class pair over every class of a vocabulary (seen and
// unseen), grounds the named classes with the grounding module and writes each image with
// its semantic label map (pipeline/synth/run.ts). Resumable (a rerun skips finished
// samples; SIGINT / SIGTERM stop it after the sample in progress, exit status 130) and
// shardable (--shard i/n, one output folder per shard; `grounded-sd export` joins them).
// Progress goes to stderr, the output folder to stdout.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { InputError, UsageError } from '../gpu/errors.js';
import { Runtime } from '../gpu/runtime.js';
import { checkWritable } from '../io/writable.js';
import type { Segmodule } from '../models/grounding/segmodule.js';
import { StableDiffusion } from '../models/sd.js';
import { disposeParams } from '../nn/module.js';
import { BUILTIN_TINY_CONFIGS, defaultImageSize, loadGroundingModule, randomGroundingModule } from '../pipeline/grounding_module.js';
import { groundedSynthGenerator, parseShard, readPairList, runSynth, synthVocabulary, type SynthEvent } from '../pipeline/synth/index.js';
import { choiceOption, joinNegativeValues, numberOption, type NumberSpec } from './args.js';
import type { Command } from './main.js';

const USAGE =
  'grounded-sd synth --model PATH|tiny --grounding CKPT|tiny --vocab voc|coco|FILE --per-class N --pairs M --out DIR\n' +
  '                  [--split 1|2|3|65_15|FILE] [--pair-list FILE] [--shard i/n] [--steps 50] [--guidance 7.5] [--seed 0]\n' +
  '                  [--size N] [--threshold 0.5] [--ignore-border R] [--batchnorm official|eval] [--tokenizer DIR]';

const NUMERIC: Record<string, NumberSpec> = {
  'per-class': { integer: true, min: 1, max: 1_000_000, why: 'images per class; the paper makes 500' },
  pairs: { integer: true, min: 0, max: 1_000_000, why: 'images per class pair; the paper makes 71' },
  steps: { integer: true, min: 1, max: 1000, why: 'SD 1.x schedulers have 1000 training timesteps' },
  guidance: { min: 0, max: 100, why: 'classifier-free guidance scale; the official test uses 7.5' },
  seed: { integer: true, min: 0, max: 0xffffffff },
  size: { integer: true, min: 8, max: 1 << 16, why: 'pixels, a multiple of 8' },
  threshold: { min: 1e-6, max: 1 - 1e-6, why: 'mask = sigmoid(logit) > threshold; official 0.5' },
  'ignore-border': { integer: true, min: 0, max: 64, why: 'pixels; VOC\'s void band is about 5 px wide, radius 2 or 3' },
};

/** A pipeline check of an option's value, reported as a usage error (exit 2, usage). */
function asUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof InputError && !(e instanceof UsageError)) throw new UsageError(e.message);
    throw e;
  }
}

const seconds = (s: number) => (s >= 60 ? `${Math.floor(s / 60)}m${Math.round(s % 60).toString().padStart(2, '0')}s` : `${s.toFixed(1)}s`);

/** Progress lines on stderr: one per sample, its generation stages rewritten in place. */
function printer(write: (s: string) => void, labelNames: readonly string[]): (e: SynthEvent) => void {
  let start = performance.now();
  let done = 0;
  let todo = 0;
  return (e) => {
    switch (e.kind) {
      case 'problem':
        write(`note: ${e.message}\n`);
        return;
      case 'plan':
        todo = e.shard - e.finished;
        write(`${e.total} samples planned, ${e.shard} in this shard, ${e.finished} already finished, ${todo} to generate\n`);
        start = performance.now();
        return;
      case 'generating':
        write(`[${e.position + 1}/${e.total}] ${e.id}: "${e.prompt}"\n`);
        return;
      case 'stage':
        write(`\r  ${e.stage} ${e.step}/${e.total}   `);
        return;
      case 'finished': {
        done++;
        const per = (performance.now() - start) / 1000 / done;
        const px = e.record.width * e.record.height;
        const cover = e.record.labels.map((l) => `${labelNames[l - 1]} ${((100 * (e.record.pixels[String(l)] ?? 0)) / px).toFixed(1)}%`).join(', ');
        write(`\r  ${cover}   (${seconds(per)}/sample, ETA ${seconds(per * (todo - done))})\n`);
        return;
      }
    }
  };
}

export const synthCommand: Command = {
  summary: 'Protocol-II: synthesise a semantic segmentation dataset (images + label maps) over all classes',
  usage: `${USAGE}\n\n` + [
    '  --model PATH|tiny      SD 1.x diffusers folder or single-file checkpoint; tiny = built-in random model',
    '  --grounding CKPT|tiny  trained grounding module (.pth or .safetensors); tiny = random module',
    '  --vocab voc|coco|FILE  classes (VOC 20, COCO 80, or a text file, one name per line); every class is used',
    '  --split S              seen/unseen split to record (voc 1|2|3, coco 65_15, or a file of seen classes)',
    '  --per-class N          images per class, "a photograph of a X" (the paper: 500)',
    '  --pairs M              images per class pair, "a photograph of a X and a Y" (the paper: 71)',
    '  --pair-list FILE       the pairs (two names per line, tab or comma); default: every unordered pair',
    '  --out DIR              images/<id>.png, labels/<id>.png (VOC palette: 0 background, class = vocabulary',
    '                         position + 1, 255 ignore), manifest.jsonl, synth.json; a rerun resumes',
    '  --shard i/n            make the samples at plan positions k with k % n == i (one --out per shard;',
    '                         `grounded-sd export` joins the shard folders)',
    '  --threshold T          mask = sigmoid(logit) > T (official 0.5); overlaps go to the higher logit',
    '  --ignore-border R      mark pixels within R px of another label as 255 (default 0: no band)',
    '  --steps/--guidance     DDIM steps (50) and guidance scale (7.5, the official test setting)',
    '  --size N               square image side (default: the model\'s, 512 for SD 1.x, 64 for tiny)',
    '  --batchnorm MODE       grounding BatchNorm: official (batch statistics, as the official test.py) or eval',
  ].join('\n'),
  async run(argv) {
    const { values } = parseArgs({
      args: joinNegativeValues(argv, Object.keys(NUMERIC)),
      options: {
        model: { type: 'string' },
        grounding: { type: 'string' },
        tokenizer: { type: 'string' },
        vocab: { type: 'string' },
        split: { type: 'string' },
        'per-class': { type: 'string' },
        pairs: { type: 'string' },
        'pair-list': { type: 'string' },
        out: { type: 'string' },
        shard: { type: 'string' },
        steps: { type: 'string' },
        guidance: { type: 'string' },
        seed: { type: 'string' },
        size: { type: 'string' },
        threshold: { type: 'string' },
        'ignore-border': { type: 'string' },
        batchnorm: { type: 'string' },
      },
    });
    if (!values.model) throw new UsageError('--model PATH or --model tiny is required');
    if (!values.grounding) throw new UsageError('--grounding CKPT or --grounding tiny is required (the trained grounding module predicts the masks)');
    if (!values.vocab) throw new UsageError('--vocab voc, --vocab coco or --vocab FILE is required');
    if (values['per-class'] === undefined) throw new UsageError('--per-class N is required (images per class; the paper makes 500)');
    if (values.pairs === undefined) throw new UsageError('--pairs M is required (images per class pair; the paper makes 71; 0 for none)');
    if (!values.out) throw new UsageError('--out DIR is required');
    const vocab = asUsage(() => synthVocabulary(values.vocab as string, values.split));
    const pairs = values['pair-list'] !== undefined ? asUsage(() => readPairList(values['pair-list'] as string, vocab.classes)) : 'all';
    const perClass = numberOption('per-class', values['per-class'], 0, NUMERIC['per-class']);
    const perPair = numberOption('pairs', values.pairs, 0, NUMERIC.pairs);
    const steps = numberOption('steps', values.steps, 50, NUMERIC.steps);
    const guidanceScale = numberOption('guidance', values.guidance, 7.5, NUMERIC.guidance);
    const seed = numberOption('seed', values.seed, 0, NUMERIC.seed);
    const threshold = numberOption('threshold', values.threshold, 0.5, NUMERIC.threshold);
    const ignoreRadius = numberOption('ignore-border', values['ignore-border'], 0, NUMERIC['ignore-border']);
    const batchNorm = choiceOption('batchnorm', values.batchnorm, ['official', 'eval'] as const) ?? 'official';
    const shard = values.shard !== undefined ? asUsage(() => parseShard(values.shard as string)) : undefined;
    const size = values.size !== undefined ? numberOption('size', values.size, 0, NUMERIC.size) : undefined;
    if (size !== undefined && size % 8 !== 0) throw new UsageError(`--size must be a multiple of 8 (the VAE's 8x downsampling), got ${size}`);
    const out = values.out;
    checkWritable([join(out, 'synth.json'), join(out, 'images', 'x.png'), join(out, 'labels', 'x.png')], '--out');
    const tinyModel = values.model === 'tiny';
    const tinyGrounding = values.grounding === 'tiny';
    if (!tinyModel && !existsSync(values.model)) throw new UsageError(`--model ${values.model} does not exist; give a diffusers folder or a single-file checkpoint, or --model tiny`);
    if (!tinyGrounding && !existsSync(values.grounding)) throw new UsageError(`--grounding ${values.grounding} does not exist; give the trained grounding checkpoint, or --grounding tiny`);
    const write = (s: string) => process.stderr.write(s);

    // Models are loaded only when a sample is left to make (runSynth asks for them).
    let rt: Runtime | undefined;
    let sd: StableDiffusion | undefined;
    let seg: Segmodule | undefined;
    const generator = async () => {
      const t0 = performance.now();
      rt = await Runtime.create();
      sd = tinyModel ? StableDiffusion.random(rt, BUILTIN_TINY_CONFIGS, 0) : await StableDiffusion.load(rt, values.model as string, { tokenizerDir: values.tokenizer });
      const side = size ?? defaultImageSize(sd);
      seg = tinyGrounding ? randomGroundingModule(rt, sd, side, 0) : (await loadGroundingModule(rt, sd, values.grounding as string, side)).module;
      write(`models ready in ${seconds((performance.now() - t0) / 1000)}${tinyModel || tinyGrounding ? ' (random weights: the pictures and labels test the pipeline only)' : ''}\n`);
      return groundedSynthGenerator(sd, seg, { steps, guidanceScale, size: side, batchNorm });
    };
    // SIGINT / SIGTERM (a scheduler's preemption): stop after the sample in progress.
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
    try {
      const summary = await runSynth(generator, {
        out, vocab, perClass, perPair, pairs, seed, shard, threshold, ignoreRadius, signal: stop.signal, onProgress: printer(write, vocab.classes),
        generation: {
          model: tinyModel ? 'tiny' : resolve(values.model),
          grounding: tinyGrounding ? 'tiny' : resolve(values.grounding),
          tokenizer: values.tokenizer !== undefined ? resolve(values.tokenizer) : null,
          steps, guidance_scale: guidanceScale, size: size ?? 'model default', batch_norm: batchNorm, scheduler: 'ddim', negative_prompt: '',
        },
      });
      write(`${summary.generated.length} samples generated, ${summary.resumed.length} already there${summary.stopped ? '; stopped early: rerun the same command to continue' : ''}\n`);
      console.log(out);
      return summary.stopped ? 130 : 0;
    } finally {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      if (seg) disposeParams(seg);
      (sd as StableDiffusion | undefined)?.dispose();
      (rt as Runtime | undefined)?.destroy();
    }
  },
};
