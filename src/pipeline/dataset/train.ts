// Training the grounding module on a built dataset: the module is built for the dataset's
// shapes (feature channels and sizes of the model it was built with, its mask size and
// text width) with the official widths ('sd1') or the narrow test widths ('tiny'), fed by
// a DatasetSource, and trained by the training loop (pipeline/train: batches, gradient
// accumulation, strategies, checkpoints, exact resume).
//
// Validation (--val-count M, --val-every K): the M held-out samples (the dataset's highest
// indices) are segmented every K steps and at the last step, with the module's BatchNorm
// on batch statistics as the official test.py runs it; mask = logit > 0 (sigmoid > 0.5).
// val_miou = mean over the seen classes of the pooled IoU (pipeline/eval/miou.ts), counted
// only for the classes the annotator found (a missed class has no ground truth). The
// module's buffers are saved before and restored after, so validating does not change the
// training run. The numbers join that step's line of log.jsonl; at the end curve.png plots
// the loss and val_miou against the step.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import type { Runtime } from '../../gpu/runtime.js';
import { writeCurveChart, type CurvePanel } from '../../io/render/curve.js';
import { SD1_GROUNDING_CONFIG, type GroundingConfig } from '../../models/grounding/config.js';
import { Segmodule } from '../../models/grounding/segmodule.js';
import type { StableDiffusion } from '../../models/sd.js';
import { lowbias32 } from '../../tensor/hash.js';
import { scope } from '../../tensor/scope.js';
import { IoUAccumulator } from '../eval/miou.js';
import { restoreGroundingState, snapshotGroundingState } from '../grounded.js';
import { TINY_GROUNDING_WIDTHS, type GroundingWidths } from '../grounding_module.js';
import { LOG } from '../train/files.js';
import { train, uploadSample } from '../train/loop.js';
import { checkTrainOptions } from '../train/options.js';
import { adamOptimizer, segmoduleTrainable } from '../train/segmodule_adapter.js';
import type { TrainOptions, TrainResult } from '../train/types.js';
import type { DatasetShape } from './settings.js';
import { DatasetSource } from './source.js';

export type WidthsName = 'tiny' | 'sd1';

export const SD1_GROUNDING_WIDTHS: GroundingWidths = {
  proj_channels: SD1_GROUNDING_CONFIG.proj_channels, patch_size: SD1_GROUNDING_CONFIG.patch_size, embedding_dim: SD1_GROUNDING_CONFIG.embedding_dim,
  num_heads: SD1_GROUNDING_CONFIG.num_heads, num_layers: SD1_GROUNDING_CONFIG.num_layers, hidden_dim: SD1_GROUNDING_CONFIG.hidden_dim, mlp_layers: SD1_GROUNDING_CONFIG.mlp_layers,
};

/** The module config for a dataset's shapes (as groundingConfigFor builds it for a model:
 *  low, mid and high features interpolated to the next group's size). */
export function datasetGroundingConfig(shape: DatasetShape, widths: GroundingWidths): GroundingConfig {
  const res = shape.feature_res;
  return {
    ...SD1_GROUNDING_CONFIG,
    ...widths,
    feature_channels: shape.feature_channels,
    feature_res: { ...res },
    low_feature_size: res.mid,
    mid_feature_size: res.high,
    high_feature_size: res.highest,
    out_size: shape.out_size,
    context_dim: shape.context_dim,
  };
}

/** TrainOptions (strategy defaults to 'no-zero-masks') plus the dataset's. */
export interface DatasetTrainOptions extends Omit<TrainOptions, 'runInfo' | 'afterStep'> {
  /** The dataset folder. */
  data: string;
  /** The SD model it was built with (required for 'regen' storage). */
  sd?: StableDiffusion;
  widths: WidthsName;
  /** Module init and data order, 0 .. 2^32-1. */
  seed: number;
  optimizer?: 'adam' | 'adamw';
  weightDecay?: number;
  /** Validate every this many steps (0: only at the last step when valCount > 0). */
  valEvery?: number;
  /** Held-out samples for validation (default 0: no validation). */
  valCount?: number;
}

export interface DatasetTrainResult extends TrainResult {
  module: Segmodule;
  source: DatasetSource;
  /** The loss / mIoU curve picture. */
  curve: string;
}

/** Count and a 32-bit hash of a list of sample indices (for run.json). */
function indexDigest(indices: number[]): string {
  let h = lowbias32(indices.length);
  for (const i of indices) h = lowbias32((h ^ i) >>> 0);
  return `${indices.length} samples, hash ${h.toString(16).padStart(8, '0')}`;
}

const nonNegInt = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** val_miou of `module` on the source's validation samples (buffers restored after). */
export async function validate(rt: Runtime, seg: Segmodule, source: DatasetSource): Promise<number | null> {
  const model = segmoduleTrainable(seg);
  const saved = await snapshotGroundingState(seg);
  try {
    const acc = new IoUAccumulator(source.settings.vocab.classes, ['grounding']);
    const S = source.settings.shape.out_size;
    for (const e of source.validation) {
      const s = await source.read(e);
      const logits = scope(() => model.forwardFn([uploadSample(rt, s)], { training: true }).logits[0]);
      const host = await logits.toArray();
      logits.dispose();
      const classes: string[] = [];
      const gt: Float32Array[] = [];
      const pred: Uint8Array[] = [];
      e.record.found.forEach((found, c) => {
        if (!found) return;
        classes.push(s.classes[c]);
        gt.push(s.target.data.subarray(c * S * S, (c + 1) * S * S));
        pred.push(Uint8Array.from(host.subarray(c * S * S, (c + 1) * S * S), (v) => (v > 0 ? 1 : 0)));
      });
      acc.addImage({ classes, gt, pred: { grounding: pred } });
    }
    const v = source.settings.vocab;
    return acc.result('grounding', { name: 'seen', seen: v.seen, unseen: [] }).miou_seen;
  } finally {
    await restoreGroundingState(seg, saved);
  }
}

/** Draws the run's log.jsonl (all sessions) as out/curve.png. */
export async function writeTrainingCurve(out: string): Promise<string> {
  const text = await readFile(join(out, LOG), 'utf8');
  const loss: Array<[number, number]> = [];
  const miou: Array<[number, number]> = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (typeof r.step !== 'number') continue;
    if (typeof r.loss === 'number') loss.push([r.step, r.loss]);
    if (typeof r.val_miou === 'number') miou.push([r.step, r.val_miou]);
  }
  const panels: CurvePanel[] = [{ label: 'loss', series: [{ name: 'training loss', color: [31, 119, 180], points: loss }] }];
  if (miou.length) panels.push({ label: 'mIoU', yMin: 0, yMax: 1, series: [{ name: 'validation mIoU (seen)', color: [214, 39, 40], points: miou }] });
  const path = join(out, 'curve.png');
  await writeCurveChart(path, { title: 'grounding module training', xLabel: 'step', panels });
  return path;
}

/** Builds the module for the dataset, trains it (validating as asked), draws the curve. */
export async function trainOnDataset(rt: Runtime, o: DatasetTrainOptions): Promise<DatasetTrainResult> {
  checkTrainOptions(o);
  if (o.widths !== 'tiny' && o.widths !== 'sd1') throw new InputError(`train: config (--config) must be 'tiny' or 'sd1', got '${String(o.widths)}'`);
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) throw new InputError(`train: seed (--seed) must be an integer in [0, 2^32-1], got ${o.seed}`);
  const wd = o.weightDecay;
  if (wd !== undefined && (!Number.isFinite(wd) || wd < 0 || wd > 1)) throw new InputError(`train: weight decay (--weight-decay) must be in [0, 1], got ${wd}`);
  const optimizer = o.optimizer ?? 'adam';
  if (optimizer !== 'adam' && optimizer !== 'adamw') throw new InputError(`train: optimizer (--optimizer) must be 'adam' or 'adamw', got '${String(optimizer)}'`);
  const valEvery = o.valEvery ?? 0;
  const valCount = o.valCount ?? 0;
  if (!nonNegInt(valEvery) || !nonNegInt(valCount)) throw new InputError(`train: --val-every ${valEvery} and --val-count ${valCount} must be non-negative integers`);
  if (valEvery > 0 && valCount === 0) throw new InputError('train: --val-every needs --val-count M (the held-out samples to validate on)');

  const source = await DatasetSource.open(o.data, { sd: o.sd, seed: o.seed, holdOut: valCount });
  const config = datasetGroundingConfig(source.settings.shape, o.widths === 'tiny' ? TINY_GROUNDING_WIDTHS : SD1_GROUNDING_WIDTHS);
  const seg = new Segmodule(config);
  seg.initRandom(rt, o.seed);
  const model = segmoduleTrainable(seg);
  const opt = adamOptimizer(model, optimizer, { lr: o.lr, weightDecay: wd });
  // What changes the result beyond the loop's own settings; the data by absolute path and
  // by the samples used, so a resume on a grown or damaged dataset is refused.
  const runInfo = {
    config: o.widths, data: resolve(o.data), storage: source.settings.storage, seed: o.seed, optimizer, weightDecay: wd ?? (optimizer === 'adamw' ? 0.01 : 0),
    train_samples: indexDigest(source.train.map((e) => e.record.index)), validation_samples: indexDigest(source.validation.map((e) => e.record.index)),
  };
  const afterStep = valCount > 0
    ? async (step: number) => ((valEvery > 0 && step % valEvery === 0) || step === o.steps ? { val_miou: await validate(rt, seg, source) } : undefined)
    : undefined;
  // A class the annotator missed has an all-zero mask, which only 'no-zero-masks' reads as
  // "no loss" (train.py's rule); 'normal' trains it as absent (the paper's ablation).
  const res = await train(rt, model, opt, source, { ...o, strategy: o.strategy ?? 'no-zero-masks', runInfo, afterStep });
  const curve = await writeTrainingCurve(o.out);
  return { ...res, module: seg, source, curve };
}
