// Adam and AdamW on the GPU with PyTorch's exact update (bias correction, eps outside
// the square root, L2 decay for Adam, decoupled decay for AdamW), state kept per named
// parameter and exportable for checkpoints. Kernel: shaders/optim.wgsl.
import { InputError, ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import { Tensor } from '../tensor/tensor.js';

const WG = 256;

export interface AdamOptions {
  lr: number;
  /** Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Default 0 (Adam) / 0.01 (AdamW), as torch. */
  weightDecay?: number;
}

/** Exported optimiser state: step count and the moment tensors by parameter name. */
export interface AdamState {
  step: number;
  expAvg: Map<string, Tensor>;
  expAvgSq: Map<string, Tensor>;
}

/** One in-place update of `param` (and its moments m, v) at step t (1-based). */
export function adamUpdate(
  param: Tensor, grad: Tensor, m: Tensor, v: Tensor,
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; decoupled: boolean; step: number },
): void {
  for (const [name, t] of [['grad', grad], ['exp_avg', m], ['exp_avg_sq', v]] as const) {
    if (t.size !== param.size || t.dtype !== 'f32') throw new ShapeError(`adamUpdate: ${name} ${t.toString()} must match param ${param.toString()} (f32)`);
  }
  if (param.dtype !== 'f32') throw new ShapeError(`adamUpdate: parameters must be f32, got ${param.toString()}`);
  if (!Number.isInteger(o.step) || o.step < 1) throw new InputError(`adamUpdate: step must be a positive integer, got ${o.step}`);
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  param.rt.dispatch(
    { family: 'optim', entry: 'optim_adam', overrides: { WG, DECOUPLED: o.decoupled ? 1 : 0 } },
    {
      params: [param.size, f32(o.beta1), f32(o.beta2), f32(1 - o.beta1), f32(1 - o.beta2), f32(o.lr / bc1), f32(Math.sqrt(bc2)), f32(o.eps), f32(o.weightDecay), f32(1 - o.lr * o.weightDecay)],
      bindings: [grad.binding, param.binding, m.binding, v.binding],
      workgroups: Math.ceil(param.size / WG),
      label: `optim_adam[${param.size}]`,
    },
  );
}

/** torch.optim.Adam over named parameters (L2 weight decay). */
export class Adam {
  readonly lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  protected readonly decoupled: boolean = false;
  private stepCount = 0;
  private readonly m = new Map<string, Tensor>();
  private readonly v = new Map<string, Tensor>();

  constructor(readonly params: Map<string, Tensor>, opts: AdamOptions, defaultDecay = 0) {
    this.lr = opts.lr;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? defaultDecay;
    if (!(this.lr >= 0) || !(this.eps >= 0) || this.betas.some((b) => !(b >= 0 && b < 1))) {
      throw new InputError(`Adam: invalid hyper-parameters lr=${this.lr}, betas=[${this.betas}], eps=${this.eps}`);
    }
  }

  get step(): number {
    return this.stepCount;
  }

  /** One step: every parameter with a gradient in `grads` is updated in place (those
   *  without one are skipped, as torch skips parameters whose .grad is None). */
  update(grads: Map<string, Tensor>): void {
    for (const name of grads.keys()) if (!this.params.has(name)) throw new InputError(`Adam: gradient for unknown parameter '${name}'`);
    this.stepCount++;
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) continue;
      if (!this.m.has(name)) {
        this.m.set(name, Tensor.zeros(p.rt, p.shape, 'f32', `adam.exp_avg.${name}`));
        this.v.set(name, Tensor.zeros(p.rt, p.shape, 'f32', `adam.exp_avg_sq.${name}`));
      }
      adamUpdate(p, g, this.m.get(name)!, this.v.get(name)!, {
        lr: this.lr, beta1: this.betas[0], beta2: this.betas[1], eps: this.eps,
        weightDecay: this.weightDecay, decoupled: this.decoupled, step: this.stepCount,
      });
    }
  }

  /** The live state (tensors owned by the optimiser; read them, do not dispose). */
  state(): AdamState {
    return { step: this.stepCount, expAvg: new Map(this.m), expAvgSq: new Map(this.v) };
  }

  /** Replaces the state (e.g. from a checkpoint); the tensors are taken over. */
  loadState(s: AdamState): void {
    for (const [name, t] of [...s.expAvg, ...s.expAvgSq]) {
      const p = this.params.get(name);
      if (!p || p.size !== t.size) throw new ShapeError(`Adam.loadState: state '${name}' ${t.toString()} does not match a parameter`);
    }
    this.dispose();
    this.stepCount = s.step;
    for (const [k, t] of s.expAvg) this.m.set(k, t);
    for (const [k, t] of s.expAvgSq) this.v.set(k, t);
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** torch.optim.AdamW: decoupled weight decay (default 0.01). */
export class AdamW extends Adam {
  protected override readonly decoupled: boolean = true;
  constructor(params: Map<string, Tensor>, opts: AdamOptions) {
    super(params, opts, 0.01);
  }
}
