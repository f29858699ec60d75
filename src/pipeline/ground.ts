// Inference with the grounding module: one binary mask per named class at a chosen size
// (mask = sigmoid(logit) > threshold), plus the IoU bookkeeping the evaluation needs.
// BatchNorm runs in eval mode (stored statistics) by default. The official test.py
// never calls .eval(), so its masks come from batch statistics and every call advances
// the spectral-norm vectors u0 and the running statistics; `officialTrainMode: true`
// reproduces that (it mutates the module's buffers, like the official code).
import { InputError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { TrainingSample } from '../io/samples.js';
import type { Tensor } from '../tensor/tensor.js';
import { scopeAsync } from '../tensor/scope.js';
import { uploadSample, type GroundingInputs } from './train/index.js';

/** A grounding module's forward (groundingForward bound to a module). */
export type GroundingForwardFn = (batch: GroundingInputs[], opts: { training: boolean; outSize?: number }) => { logits: Tensor[] };

export interface GroundOptions {
  /** Mask size (default: the module's out_size, 512 for SD v1). */
  outSize?: number;
  /** Probability threshold (default 0.5, as the official code). */
  threshold?: number;
  /** Batch statistics and buffer updates as in the official test.py (default false). */
  officialTrainMode?: boolean;
}

export interface GroundResult {
  size: number;
  /** Per class, size*size bytes, 1 inside the mask. */
  masks: Uint8Array[];
  /** Per class, the mask logits (size*size). */
  logits: Float32Array[];
}

/** Masks for every image of `batch` (each image: its classes in text-embedding row order). */
export async function groundBatch(forward: GroundingForwardFn, batch: GroundingInputs[], opts: GroundOptions = {}): Promise<GroundResult[]> {
  const threshold = opts.threshold ?? 0.5;
  if (!(threshold > 0 && threshold < 1)) throw new InputError(`threshold must be in (0, 1), got ${threshold}`);
  // sigmoid(x) > t  <=>  x > log(t / (1 - t)); comparing logits avoids exp overflow.
  const cut = Math.log(threshold / (1 - threshold));
  return scopeAsync(async () => {
    const fwd = forward(batch, { training: opts.officialTrainMode ?? false, outSize: opts.outSize });
    const out: GroundResult[] = [];
    for (const logits of fwd.logits) {
      const [n, S] = logits.shape;
      const all = await logits.toArray();
      const res: GroundResult = { size: S, masks: [], logits: [] };
      for (let c = 0; c < n; c++) {
        const l = all.slice(c * S * S, (c + 1) * S * S);
        res.logits.push(l);
        res.masks.push(Uint8Array.from(l, (x: number) => (x > cut ? 1 : 0)));
      }
      out.push(res);
    }
    return out;
  });
}

/** Intersection and union counts per class name, accumulated over images. */
export class IoUMeter {
  readonly counts = new Map<string, { inter: number; union: number }>();

  /** Adds one mask against its target (values > 0.5 count as inside). */
  add(name: string, mask: Uint8Array, target: ArrayLike<number>): void {
    if (mask.length !== target.length) throw new InputError(`IoU of ${name}: mask has ${mask.length} pixels, target ${target.length}; resize one first`);
    let inter = 0;
    let union = 0;
    for (let i = 0; i < mask.length; i++) {
      const t = target[i] > 0.5;
      const p = mask[i] === 1;
      if (p && t) inter++;
      if (p || t) union++;
    }
    const c = this.counts.get(name) ?? { inter: 0, union: 0 };
    c.inter += inter;
    c.union += union;
    this.counts.set(name, c);
  }

  /** Category-wise IoU (a class never predicted nor present counts as 1). */
  perClass(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [k, c] of this.counts) out.set(k, c.union === 0 ? 1 : c.inter / c.union);
    return out;
  }

  /** Mean over classes of the category-wise IoU. */
  mean(): number {
    const v = [...this.perClass().values()];
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0;
  }
}

/** mIoU of `m` on host samples (their own classes and targets), one image at a time. */
export async function evaluateMIoU(rt: Runtime, forward: GroundingForwardFn, samples: TrainingSample[], opts: GroundOptions = {}): Promise<number> {
  const meter = new IoUMeter();
  for (const s of samples) {
    const S = s.target.shape[1];
    const [res] = await scopeAsync(() => groundBatch(forward, [uploadSample(rt, s)], { ...opts, outSize: opts.outSize ?? S }));
    if (res.size !== S) throw new InputError(`evaluation: masks are ${res.size}x${res.size} but targets are ${S}x${S}; pass outSize ${S}`);
    s.classes.forEach((name, c) => meter.add(name, res.masks[c], s.target.data.subarray(c * S * S, (c + 1) * S * S)));
  }
  return meter.mean();
}
