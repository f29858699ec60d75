// `grounded-sd eval`: the paper's Protocol-I evaluation. Generates the five test sets of a
// vocabulary split (pipeline/eval/testsets.ts), segments every image with the grounding
// module and with DAAM from the same sampling run, compares both with the ground truth of
// an annotator, and writes per-sample counts as it goes (a rerun resumes), then
// results.json, report.md and chart.png. Progress goes to stderr, the written paths to
// stdout.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { InputError, UsageError } from '../gpu/errors.js';
import { Runtime } from '../gpu/runtime.js';
import { checkWritable } from '../io/writable.js';
import type { Segmodule } from '../models/grounding/segmodule.js';
import { StableDiffusion } from '../models/sd.js';
import { disposeParams } from '../nn/module.js';
import { detectorAnnotator } from '../pipeline/annotate/detector.js';
import { masksAnnotator } from '../pipeline/annotate/masks.js';
import type { Annotator } from '../pipeline/annotate/types.js';
import { groundedSampleGenerator } from '../pipeline/eval/engine.js';
import { runEval, type EvalEvent } from '../pipeline/eval/run.js';
import { vocabulary } from '../pipeline/eval/testsets.js';
import { BUILTIN_TINY_CONFIGS, defaultImageSize, loadGroundingModule, randomGroundingModule } from '../pipeline/grounding_module.js';
import { choiceOption, joinNegativeValues, numberOption, type NumberSpec } from './args.js';
import { DETECTOR_ARG_OPTIONS, DETECTOR_NUMERIC, DETECTOR_USAGE_LINES, detectorOptions } from './detector_args.js';
import type { Command } from './main.js';

const USAGE =
  'grounded-sd eval --model PATH|tiny --grounding CKPT|tiny --vocab voc|coco [--split 1|2|3] [--count 20] [--out eval/]\n' +
  '                 --annotator masks --gt DIR|FILE.json | --annotator detector --detector CKPT [--detector-arch v1|v2]\n' +
  '                 [--detector-score 0.05] [--detector-min-size 800] [--detector-max-size 1333]\n' +
  '                 [--steps 50] [--guidance 7.5] [--seed 0] [--size N]\n' +
  '                 [--batchnorm official|eval] [--save-masks] [--tokenizer DIR]';

const NUMERIC: Record<string, NumberSpec> = {
  count: { integer: true, min: 1, max: 100000, why: 'samples per test set' },
  steps: { integer: true, min: 1, max: 1000, why: 'SD 1.x schedulers have 1000 training timesteps' },
  guidance: { min: 0, max: 100, why: 'classifier-free guidance scale; the official test uses 7.5' },
  seed: { integer: true, min: 0, max: 0xffffffff },
  size: { integer: true, min: 8, max: 1 << 16, why: 'pixels, a multiple of 8' },
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
const pct = (v: number | null) => (v === null ? '–' : `${(100 * v).toFixed(1)}%`);

/** Progress lines on stderr: one per sample, its generation stages rewritten in place. */
function printer(write: (s: string) => void): (e: EvalEvent) => void {
  let start = performance.now();
  let done = 0;
  let todo = 0;
  return (e) => {
    switch (e.kind) {
      case 'plan':
        todo = e.total - e.finished;
        write(`${e.total} samples planned, ${e.finished} already finished (resumed), ${todo} to generate\n`);
        start = performance.now();
        return;
      case 'resumed':
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
        write(`\r  IoU  DAAM ${pct(e.iou.daam)}  grounding ${pct(e.iou.grounding)}   (${seconds(per)}/sample, ETA ${seconds(per * (todo - done))})\n`);
        return;
      }
      case 'written':
        return;
    }
  };
}

export const evalCommand: Command = {
  summary: 'Protocol-I evaluation: grounding module vs DAAM on generated images (mIoU seen/unseen)',
  usage: `${USAGE}\n\n` + [
    '  --model PATH|tiny      SD 1.x diffusers folder or single-file checkpoint; tiny = built-in random model',
    '  --grounding CKPT|tiny  grounding module checkpoint (.pth or .safetensors); tiny = random module',
    '  --vocab voc|coco       class vocabulary; --split 1|2|3 for voc (official splits), 65_15 for coco',
    '  --count N              samples per test set (five sets: one seen, one unseen, two seen, seen+unseen, two unseen)',
    '  --annotator masks      ground truth supplied by --gt: a folder <sample id>/<class>.png (>127 inside)',
    '                         or a COCO JSON file (images named <sample id>.<ext>, categories by class name)',
    ...DETECTOR_USAGE_LINES,
    '                         (the detector runs on the same GPU runtime as SD; it is loaded first)',
    '  --out DIR              run folder (default eval/): samples/<id>.json, results.json, report.md, chart.png;',
    '                         rerunning with the same settings resumes, finished samples are not regenerated',
    '  --save-masks           also write each sample\'s image and masks as PNGs under samples/<id>/',
    '  --size N               square image side (default: the model\'s, 512 for SD 1.x, 64 for tiny)',
    '  --batchnorm MODE       grounding BatchNorm: official (batch statistics, as the official test.py) or eval',
  ].join('\n'),
  async run(argv) {
    const { values } = parseArgs({
      args: joinNegativeValues(argv, [...Object.keys(NUMERIC), ...Object.keys(DETECTOR_NUMERIC)]),
      options: {
        model: { type: 'string' },
        grounding: { type: 'string' },
        tokenizer: { type: 'string' },
        vocab: { type: 'string' },
        split: { type: 'string' },
        count: { type: 'string' },
        out: { type: 'string' },
        annotator: { type: 'string' },
        gt: { type: 'string' },
        steps: { type: 'string' },
        guidance: { type: 'string' },
        seed: { type: 'string' },
        size: { type: 'string' },
        batchnorm: { type: 'string' },
        'save-masks': { type: 'boolean' },
        ...DETECTOR_ARG_OPTIONS,
      },
    });
    if (!values.model) throw new UsageError('--model PATH or --model tiny is required');
    if (!values.grounding) throw new UsageError('--grounding CKPT or --grounding tiny is required');
    if (!values.vocab) throw new UsageError('--vocab voc or --vocab coco is required');
    if (!values.annotator) throw new UsageError('--annotator masks (ground truth from --gt) or --annotator detector (--detector CKPT) is required');
    const annotatorName = choiceOption('annotator', values.annotator, ['masks', 'detector'] as const) as 'masks' | 'detector';
    const detector = detectorOptions(annotatorName, values);
    if (annotatorName === 'masks' && !values.gt) throw new UsageError('--annotator masks needs --gt DIR (a folder <sample id>/<class>.png) or --gt FILE.json (COCO)');
    if (annotatorName === 'detector' && values.gt !== undefined) throw new UsageError('--gt is for --annotator masks; the detector annotator makes its own ground truth');
    const vocab = asUsage(() => vocabulary(values.vocab as string, values.split));
    const count = numberOption('count', values.count, 20, NUMERIC.count);
    const steps = numberOption('steps', values.steps, 50, NUMERIC.steps);
    const guidanceScale = numberOption('guidance', values.guidance, 7.5, NUMERIC.guidance);
    const seed = numberOption('seed', values.seed, 0, NUMERIC.seed);
    const batchNorm = choiceOption('batchnorm', values.batchnorm, ['official', 'eval'] as const) ?? 'official';
    if (values.size !== undefined) {
      const v = numberOption('size', values.size, 0, NUMERIC.size);
      if (v % 8 !== 0) throw new UsageError(`--size must be a multiple of 8 (the VAE's 8x downsampling), got ${v}`);
    }
    const out = values.out ?? 'eval';
    checkWritable([join(out, 'results.json'), join(out, 'samples', 'x.json')], '--out');
    const tinyModel = values.model === 'tiny';
    const tinyGrounding = values.grounding === 'tiny';
    if (!tinyModel && !existsSync(values.model)) throw new UsageError(`--model ${values.model} does not exist; give a diffusers folder or a single-file checkpoint, or --model tiny`);
    if (!tinyGrounding && !existsSync(values.grounding)) throw new UsageError(`--grounding ${values.grounding} does not exist; give the grounding checkpoint, or --grounding tiny`);
    const write = (s: string) => process.stderr.write(s);
    const size = values.size !== undefined ? Number(values.size) : undefined;
    // The ground truth is opened (and its format checked) before any model is loaded; the
    // detector is loaded first (a checkpoint of another architecture fails before SD
    // loads) on the Runtime SD then shares.
    let rt: Runtime | undefined;
    let annotator: Annotator & { dispose?(): void };
    if (detector) {
      rt = await Runtime.create();
      try {
        const t0 = performance.now();
        annotator = await detectorAnnotator(rt, detector);
        write(`detector ${String(annotator.identity.model)} ready in ${seconds((performance.now() - t0) / 1000)}\n`);
      } catch (e) {
        rt.destroy();
        throw e;
      }
    } else {
      annotator = await masksAnnotator(values.gt as string, vocab.classes);
    }

    // The SD models are loaded only when a sample is left to generate (runEval asks for them).
    let sd: StableDiffusion | undefined;
    let seg: Segmodule | undefined;
    const generator = async () => {
      const t0 = performance.now();
      rt ??= await Runtime.create();
      sd = tinyModel ? StableDiffusion.random(rt, BUILTIN_TINY_CONFIGS, 0) : await StableDiffusion.load(rt, values.model as string, { tokenizerDir: values.tokenizer });
      const side = size ?? defaultImageSize(sd);
      seg = tinyGrounding ? randomGroundingModule(rt, sd, side, 0) : (await loadGroundingModule(rt, sd, values.grounding as string, side)).module;
      write(`models ready in ${seconds((performance.now() - t0) / 1000)}${tinyModel || tinyGrounding ? ' (random weights: the numbers test the pipeline only)' : ''}\n`);
      return groundedSampleGenerator(sd, seg, { steps, guidanceScale, size: side, batchNorm });
    };
    try {
      const summary = await runEval(generator, annotator, {
        vocab, count, seed, out, saveMasks: values['save-masks'] ?? false, realWeights: !tinyModel && !tinyGrounding, onProgress: printer(write),
        generation: {
          model: tinyModel ? 'tiny' : resolve(values.model),
          grounding: tinyGrounding ? 'tiny' : resolve(values.grounding),
          steps, guidance_scale: guidanceScale, size: size ?? 'model default', batch_norm: batchNorm, scheduler: 'ddim',
        },
      });
      const all = summary.results.all.methods;
      write(
        `all sets: DAAM seen ${pct(all.daam.miou_seen)} unseen ${pct(all.daam.miou_unseen)}; ` +
          `grounding seen ${pct(all.grounding.miou_seen)} unseen ${pct(all.grounding.miou_unseen)}\n`,
      );
      for (const f of [summary.files.results, summary.files.report, summary.files.chart]) console.log(f);
      return 0;
    } finally {
      if (seg) disposeParams(seg);
      (sd as StableDiffusion | undefined)?.dispose();
      annotator.dispose?.();
      (rt as Runtime | undefined)?.destroy();
    }
  },
};
