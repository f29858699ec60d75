// Range checks of the training options, and the settings that define a run (stored in
// run.json, compared on --resume). Limits and why:
// - lr in (0, 1]: Adam moves every weight by about lr per step whatever the gradient's
//   scale, and the module's weights start near 1/sqrt(fan_in) < 1, so lr > 1 replaces
//   them with noise in one step (train.py uses 1e-5; the synthetic tests 3e-3 to 0.05).
// - steps x accum x batch at most 2^53: the sample position (the data "RNG state") must
//   stay an exact integer.
// - dice in [0, 100]: Dice is at most 1 per class and BCE is of order 1, so past 100 the
//   BCE term no longer matters; a larger value is a typo.
// - batch: bounded by the memory check (memory.ts), not here.
import { InputError } from '../../gpu/errors.js';
import type { Strategy, TrainOptions } from './types.js';

export const MAX_LR = 1;
export const MAX_DICE = 100;
/** WebGPU does not report a device's memory size, so a step's memory is checked against
 *  an explicit budget. 4 GiB fits the small GPUs SD v1 runs on and a CI machine's
 *  software adapter; raise it (--memory-budget) on a larger device. */
export const DEFAULT_MEMORY_BUDGET = 4 * 2 ** 30;

export interface LoopSettings {
  batch: number; accum: number; strategy: Strategy; dice: number;
  checkpointEvery: number; lossEvery: number; memoryBudget: number;
}

function bad(name: string, flag: string, want: string, got: unknown, why = ''): never {
  throw new InputError(`train: ${name} (${flag}) must be ${want}, got ${typeof got === 'string' ? `'${got}'` : String(got)}${why ? `; ${why}` : ''}`);
}

function int(name: string, flag: string, v: number, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) bad(name, flag, `an integer >= ${min}`, v);
  return v;
}

/** Validates `o` and fills in the defaults. */
export function checkTrainOptions(o: TrainOptions): LoopSettings {
  const steps = int('steps', '--steps', o.steps, 1);
  const batch = int('batch', '--batch', o.batch ?? 1, 1);
  const accum = int('accum', '--accum', o.accum ?? 1, 1);
  if (steps * accum * batch > Number.MAX_SAFE_INTEGER) {
    bad('steps x accum x batch', '--steps, --accum, --batch', `at most 2^53 samples`, steps * accum * batch, 'the sample position must stay an exact integer');
  }
  if (typeof o.lr !== 'number' || !Number.isFinite(o.lr) || !(o.lr > 0) || o.lr > MAX_LR) {
    bad('lr', '--lr', `a number in (0, ${MAX_LR}]`, o.lr, 'Adam moves each weight by about lr per step, and the weights are smaller than 1, so a larger rate diverges at once (train.py uses 1e-5)');
  }
  const dice = o.dice ?? 0;
  if (typeof dice !== 'number' || !Number.isFinite(dice) || dice < 0 || dice > MAX_DICE) {
    bad('dice', '--dice', `a number in [0, ${MAX_DICE}]`, dice, 'Dice and BCE are both of order 1 per class, so a larger weight makes BCE irrelevant');
  }
  const strategy = o.strategy ?? 'normal';
  if (strategy !== 'normal' && strategy !== 'no-zero-masks') bad('strategy', '--strategy', "'normal' or 'no-zero-masks'", strategy);
  const checkpointEvery = int('checkpointEvery', '--checkpoint-every', o.checkpointEvery ?? 0, 0);
  const lossEvery = int('lossEvery', '--loss-every', o.lossEvery ?? 1, 1);
  const memoryBudget = o.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
  if (typeof memoryBudget !== 'number' || !Number.isFinite(memoryBudget) || !(memoryBudget > 0)) bad('memoryBudget', '--memory-budget', 'a positive number of bytes', memoryBudget);
  if (o.resume && o.overwrite) throw new InputError('train: --resume continues the run in --out and --overwrite deletes it; give one of them');
  return { batch, accum, strategy, dice, checkpointEvery, lossEvery, memoryBudget };
}

/** What defines a run's result, beyond the model and data: stored at the start and
 *  compared on resume. Steps, checkpoint and logging intervals, progress and the memory
 *  budget may change between sessions. */
export function runSettings(o: TrainOptions, s: LoopSettings): Record<string, unknown> {
  return { batch: s.batch, accum: s.accum, strategy: s.strategy, dice: s.dice, lr: o.lr, ...(o.runInfo ?? {}) };
}
