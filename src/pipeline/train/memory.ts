// Device memory of one training step, estimated before anything is allocated so that a
// batch that cannot fit is refused with the numbers instead of exhausting the device
// (or, on a software adapter, the host) part-way through the first step. A micro-batch
// uploads every image's inputs and keeps every image's tapes until its backward, so the
// estimate grows with the batch; gradient accumulation (--accum) does not.
//   total = fixed (parameters, gradients, optimiser moments)
//         + batch x per image (inputs, the model's tapes, the loss path at the mask size)
//         + one image's temporaries (forward and backward run image by image)
// It is an estimate from the first sample's shapes: test/pipeline/train_input.test.ts
// compares it with the pool's measured peak on the tiny config.
import { formatBytes, LimitError } from '../../gpu/errors.js';
import type { Runtime } from '../../gpu/runtime.js';
import { FEATURE_GROUPS, type TrainingSample } from '../../io/samples.js';
import type { TrainableModel } from './types.js';

export interface MemoryEstimate { total: number; fixed: number; perImage: number; transient: number; largest: number }

const F32 = 4;

/** Float32 bytes of a sample's features, text embedding and target. */
export function sampleInputBytes(s: TrainingSample): number {
  let n = s.textEmbedding.data.length + s.target.data.length;
  for (const g of FEATURE_GROUPS) for (const f of s.features[g] ?? []) n += f.data.length;
  return n * F32;
}

export function estimateStepBytes(model: TrainableModel, sample: TrainingSample, batch: number): MemoryEstimate {
  const [n, S] = sample.target.shape;
  // Logits, the uploaded target, row weights and the loss gradient, plus the Dice
  // gradient and its sum: five [n, S, S] tensors per image until the backward.
  const lossPath = 5 * n * S * S * F32;
  const act = model.activationBytes?.(sample) ?? { kept: 0, transient: 0, largest: 0 };
  let all = 0;
  let trained = 0;
  for (const p of model.params().values()) {
    const bytes = p.shape.reduce((a, b) => a * b, 1) * F32;
    all += bytes;
    if (p.kind === 'param') trained += bytes;
  }
  // Gradients, then Adam's two moments (an optimiser with less state needs less).
  const fixed = all + trained + 2 * trained;
  const perImage = sampleInputBytes(sample) + lossPath + act.kept;
  let largest = Math.max(n * S * S * F32, act.largest);
  for (const g of FEATURE_GROUPS) for (const f of sample.features[g] ?? []) largest = Math.max(largest, f.data.length * F32);
  return { total: fixed + batch * perImage + act.transient, fixed, perImage, transient: act.transient, largest };
}

/** Refuses (LimitError) a micro-batch whose estimate exceeds `budget`, or one whose
 *  largest tensor exceeds the adapter's maxBufferSize. `where` names the sample. */
export function checkMemory(rt: Runtime, model: TrainableModel, sample: TrainingSample, batch: number, budget: number, where: string): MemoryEstimate {
  const e = estimateStepBytes(model, sample, batch);
  const maxBuffer = rt.limits.maxBufferSize;
  if (e.largest > maxBuffer) {
    throw new LimitError(`train: ${where} needs a ${formatBytes(e.largest)} tensor, more than maxBufferSize ${formatBytes(maxBuffer)} on ${rt.adapterName}; use fewer classes per sample or a smaller mask size`);
  }
  if (e.total > budget) {
    throw new LimitError(
      `train: --batch ${batch} needs about ${formatBytes(e.total)} of device memory per step (${batch} x ${formatBytes(e.perImage)} per image for inputs, tapes and loss, `
      + `${formatBytes(e.transient)} of one image's temporaries, ${formatBytes(e.fixed)} for parameters, gradients and optimiser state; estimated from ${where}), `
      + `more than the memory budget of ${formatBytes(budget)}. Lower --batch (--accum K gives the same effective batch), or raise --memory-budget if the device has the memory`,
    );
  }
  return e;
}
