// The contracts of the training loop: what it needs from a model, an optimiser and a
// data source, its options, and what it returns. Kept apart from the loop so the
// checkpoint and run-folder code can name them without importing the loop.
import type { FeatureGroup, TrainingSample } from '../../io/samples.js';
import type { Param } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';

/** One image's inputs on the GPU (the grounding module's GroundingSample). */
export interface GroundingInputs { features: Record<FeatureGroup, Tensor[]>; textEmbedding: Tensor }

/** Device bytes one image costs a model beyond its uploaded inputs and the loss:
 *  `kept` stays allocated until the micro-batch's backward (tapes), `transient` is the
 *  peak of one image's temporaries (only one image's are alive at a time). */
export interface ActivationBytes { kept: number; transient: number; largest: number }

/** What the loop needs from a model: its named parameters/buffers, a training forward
 *  that returns per-image logits [n_b, S, S], and a backward that adds every
 *  parameter's gradient into `into` (keyed like params()). */
export interface TrainableModel {
  params(): Map<string, Param>;
  forward(batch: GroundingInputs[]): { logits: Tensor[] };
  backward(fwd: { logits: Tensor[] }, dlogits: Tensor[], into: Map<string, Tensor>): void;
  /** Optional: activation bytes per image for the memory check before training. */
  activationBytes?(sample: TrainingSample): ActivationBytes;
}

/** An optimiser updating the trained parameters from their gradients (in place, or by
 *  setting new tensors into the Params), with exportable state. It owns its memory:
 *  step() runs outside any scope. */
export interface TrainOptimizer {
  step(params: Map<string, Param>, grads: Map<string, Tensor>): void;
  /** State tensors by name (e.g. m.<param>, v.<param>) and the update count. */
  exportState(): { step: number; tensors: Map<string, Tensor> };
  /** Replaces the state; throws (WeightError, before changing anything) when the
   *  tensors do not fit the parameters. */
  importState(state: { step: number; tensors: Map<string, Tensor> }): void;
}

/** Where samples come from: position k of the run's sequence. */
export interface SampleSource { at(k: number): Promise<TrainingSample> | TrainingSample }

export type Strategy = 'normal' | 'no-zero-masks';

export interface TrainOptions {
  out: string;
  steps: number;
  batch?: number;
  accum?: number;
  strategy?: Strategy;
  /** Weight of the Dice loss added to BCE (default 0: BCE only, as train.py). */
  dice?: number;
  /** Learning rate, recorded in the log (the optimiser owns the value it uses). */
  lr: number;
  checkpointEvery?: number;
  /** Read the loss back every this many steps (default 1); other steps log null. */
  lossEvery?: number;
  /** Continue the run in `out` from its latest checkpoint. */
  resume?: boolean;
  /** Start afresh in an `out` that already holds a run, deleting that run first. */
  overwrite?: boolean;
  /** Device bytes a step may need (default DEFAULT_MEMORY_BUDGET); checked before training. */
  memoryBudget?: number;
  /** Progress lines on stderr (default true). */
  progress?: boolean;
  /** Settings beyond the loop's own that change the result (seed, data, optimiser...):
   *  stored in the run folder and compared on resume. */
  runInfo?: Record<string, unknown>;
  /** Called after each step's update, before its log line is written; the numbers it
   *  returns are added to that line (validation metrics). It must leave the model's
   *  parameters and buffers as it found them. */
  afterStep?: (step: number) => Promise<Record<string, number | null> | void>;
}

export interface StepLog { step: number; loss: number | null; lr: number; seconds: number; skipped?: boolean; [metric: string]: number | boolean | null | undefined }

export interface TrainResult { step: number; logs: StepLog[] }

/** What state.json of a checkpoint holds. */
export interface CheckpointState {
  step: number;
  /** Samples consumed: step * accum * batch (the data "RNG state"). */
  position: number;
  optimizerStep: number;
  /** The run's settings (see runSettings), as in run.json. */
  settings: Record<string, unknown>;
}
