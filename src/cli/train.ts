// `grounded-sd train`: trains the grounding module on a folder of training samples (see
// src/io/samples.ts) or on the synthetic task. Progress goes to stderr, one JSON line
// per step to <out>/log.jsonl, checkpoints to <out>/ckpt-<step>/ (newest named in
// <out>/latest); a summary line goes to stdout. The library checks every value's range
// (src/pipeline/train/options.ts); here only the syntax of numbers is checked.
// A --data folder made by `grounded-sd dataset build` (it holds dataset.json) trains
// through pipeline/dataset/train.ts: the module is built for the dataset's shapes, 'regen'
// samples get their features recomputed with --model, missed classes get no loss
// (--strategy no-zero-masks by default), and --val-count/--val-every validate on held-out
// samples; curve.png is drawn at the end.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { InputError, UsageError } from '../gpu/errors.js';
import { Runtime } from '../gpu/runtime.js';
import { StableDiffusion } from '../models/sd.js';
import { DATASET_FILE, trainOnDataset } from '../pipeline/dataset/index.js';
import { BUILTIN_TINY_CONFIGS } from '../pipeline/grounding_module.js';
import { DEFAULT_MEMORY_BUDGET, trainGrounding, type ConfigName, type Strategy } from '../pipeline/train/index.js';
import type { Command } from './main.js';

const USAGE = 'grounded-sd train (--data DIR | --synthetic) --out DIR [--steps N] [--lr X] [--batch N] [--accum K] [--seed N] '
  + '[--strategy normal|no-zero-masks] [--dice W] [--optimizer adam|adamw] [--weight-decay X] [--checkpoint-every N] '
  + '[--loss-every N] [--resume | --overwrite] [--memory-budget GIB] [--config tiny|sd1] [--model PATH|tiny] [--tokenizer DIR] '
  + '[--val-every K] [--val-count M]';

function num(name: string, v: string | undefined, dflt: number, integer: boolean, min: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) {
    throw new UsageError(`--${name} needs ${integer ? 'an integer' : 'a number'} >= ${min}, got '${v}'`);
  }
  return n;
}

function oneOf<T extends string>(name: string, v: string | undefined, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (!(allowed as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T;
}

export const trainCommand: Command = {
  summary: 'train the grounding module (Adam, BCE [+ Dice]) on samples or the synthetic task',
  usage: `${USAGE}\n\n` + [
    '  --data DIR           folder of *.safetensors training samples (features, text_embedding, target),',
    '                       or a dataset folder made by grounded-sd dataset build',
    '  --model PATH|tiny    the SD model a regen dataset was built with (its features are recomputed)',
    '  --val-count M        hold out the dataset\'s M highest-index samples for validation',
    '  --val-every K        validation mIoU every K steps (and at the end) in log.jsonl; curve.png at the end',
    '  --synthetic          train on the synthetic shapes task instead of --data',
    '  --out DIR            log.jsonl, checkpoints ckpt-<step>/ and latest',
    '  --steps N            optimiser steps (default 1000)',
    '  --lr X               learning rate (default 1e-5, as train.py)',
    '  --batch N            images per micro-batch (default 1)',
    '  --accum K            micro-batches per step, gradients accumulated (default 1)',
    '  --seed N             init and data order (default 0)',
    '  --strategy S         normal, or no-zero-masks (classes with an empty mask get no loss; default for datasets)',
    '  --dice W             add W x Dice loss to the BCE (default 0)',
    '  --optimizer O        adam (default) or adamw',
    '  --weight-decay X     L2 (adam) or decoupled (adamw) decay (default 0 / 0.01)',
    '  --checkpoint-every N checkpoint every N steps (default 100; always at the end)',
    '  --loss-every N       read the loss back every N steps (default 1)',
    '  --resume             continue from <out>/latest (the settings the run started with are checked)',
    '  --overwrite          delete the run already in --out and start over (without it, such a folder is refused)',
    `  --memory-budget GIB  device memory a step may use (default ${DEFAULT_MEMORY_BUDGET / 2 ** 30}); larger batches are refused`,
    '  --config C           tiny (test widths, 32x32 masks) or sd1 (real widths, default)',
  ].join('\n'),
  async run(argv) {
    let values;
    try {
      values = parseArgs({
        args: argv,
        options: {
          data: { type: 'string' }, synthetic: { type: 'boolean' }, out: { type: 'string' },
          steps: { type: 'string' }, lr: { type: 'string' }, batch: { type: 'string' }, accum: { type: 'string' },
          seed: { type: 'string' }, strategy: { type: 'string' }, dice: { type: 'string' },
          optimizer: { type: 'string' }, 'weight-decay': { type: 'string' }, 'checkpoint-every': { type: 'string' },
          'loss-every': { type: 'string' }, resume: { type: 'boolean' }, overwrite: { type: 'boolean' },
          'memory-budget': { type: 'string' }, config: { type: 'string' },
          model: { type: 'string' }, tokenizer: { type: 'string' }, 'val-every': { type: 'string' }, 'val-count': { type: 'string' },
        },
      }).values;
      if (!values.out) throw new UsageError('--out DIR is required');
      if (!!values.data === !!values.synthetic) throw new UsageError('give exactly one of --data DIR and --synthetic');
      if (values.resume && values.overwrite) throw new UsageError('--resume continues the run in --out and --overwrite deletes it; give one of them');
    } catch (e) {
      console.error(`grounded-sd train: ${(e as Error).message}\nusage: ${USAGE}`);
      return 2;
    }
    const dataset = !!values.data && existsSync(join(values.data, DATASET_FILE));
    if (!dataset && (values.model || values['val-every'] || values['val-count'])) {
      console.error(`grounded-sd train: --model, --val-every and --val-count are for a dataset folder (made by grounded-sd dataset build)\nusage: ${USAGE}`);
      return 2;
    }
    let opts;
    let val;
    try {
      val = { every: num('val-every', values['val-every'], 0, true, 0), count: num('val-count', values['val-count'], 0, true, 0) };
      opts = {
        out: values.out,
        data: values.synthetic ? null : values.data!,
        steps: num('steps', values.steps, 1000, true, 1),
        lr: num('lr', values.lr, 1e-5, false, 0),
        batch: num('batch', values.batch, 1, true, 1),
        accum: num('accum', values.accum, 1, true, 1),
        seed: num('seed', values.seed, 0, true, 0),
        strategy: oneOf<Strategy>('strategy', values.strategy, ['normal', 'no-zero-masks'], dataset ? 'no-zero-masks' : 'normal'),
        dice: num('dice', values.dice, 0, false, 0),
        optimizer: oneOf('optimizer', values.optimizer, ['adam', 'adamw'] as const, 'adam'),
        weightDecay: values['weight-decay'] === undefined ? undefined : num('weight-decay', values['weight-decay'], 0, false, 0),
        checkpointEvery: num('checkpoint-every', values['checkpoint-every'], 100, true, 1),
        lossEvery: num('loss-every', values['loss-every'], 1, true, 1),
        resume: values.resume ?? false,
        overwrite: values.overwrite ?? false,
        memoryBudget: num('memory-budget', values['memory-budget'], DEFAULT_MEMORY_BUDGET / 2 ** 30, false, 0) * 2 ** 30,
        config: oneOf<ConfigName>('config', values.config, ['tiny', 'sd1'], 'sd1'),
      };
    } catch (e) {
      console.error(`grounded-sd train: ${(e as Error).message}\nusage: ${USAGE}`);
      return 2;
    }
    if (dataset) return trainDataset(opts, values, val);
    const rt = await Runtime.create();
    try {
      const res = await trainGrounding(rt, opts);
      const last = [...res.logs].reverse().find((l) => l.loss !== null);
      console.log(JSON.stringify({ step: res.step, loss: last?.loss ?? null, out: opts.out }));
      return 0;
    } finally {
      rt.destroy();
    }
  },
};

/** `train --data DIR` on a dataset folder. */
async function trainDataset(
  opts: Omit<Parameters<typeof trainGrounding>[1], 'data'> & { data: string | null },
  values: { model?: string; tokenizer?: string },
  val: { every: number; count: number },
): Promise<number> {
  const model = values.model;
  if (model && model !== 'tiny' && !existsSync(model)) throw new InputError(`--model ${model} does not exist; give the model the dataset was built with, or --model tiny`);
  const rt = await Runtime.create();
  let sd: StableDiffusion | undefined;
  try {
    if (model) sd = model === 'tiny' ? StableDiffusion.random(rt, BUILTIN_TINY_CONFIGS, 0) : await StableDiffusion.load(rt, model, { tokenizerDir: values.tokenizer });
    const res = await trainOnDataset(rt, { ...opts, data: opts.data as string, sd, widths: opts.config, valEvery: val.every, valCount: val.count });
    for (const p of res.source.problems) process.stderr.write(`warning: ${p}\n`);
    const last = [...res.logs].reverse().find((l) => l.loss !== null);
    const lastVal = [...res.logs].reverse().find((l) => typeof l.val_miou === 'number');
    console.log(JSON.stringify({
      step: res.step, loss: last?.loss ?? null, val_miou: lastVal?.val_miou ?? null, out: opts.out, curve: res.curve,
      samples: res.source.train.length, validation: res.source.validation.length, left_out: res.source.problems.length,
    }));
    return 0;
  } finally {
    sd?.dispose();
    rt.destroy();
  }
}
