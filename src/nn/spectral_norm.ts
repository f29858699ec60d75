// BigGAN-style spectral normalisation (the grounding module's SNConv2d): power iteration
// from the stored u0, sigma, W / sigma, the train-mode buffer update, and the backward
// through sigma. Kernels: shaders/spectral_norm.wgsl. f32 only (training state).
import { ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import { Tensor } from '../tensor/tensor.js';

const WG = 256;

export interface SpectralNormResult {
  /** weight / sigma, weight's shape: the tensor the layer computes with. */
  weight: Tensor;
  /** [1] */
  sigma: Tensor;
  /** [O] left singular vector after the iterations (what train mode stores in u0). */
  u: Tensor;
  /** [K] right singular vector (K = weight.size / O). */
  v: Tensor;
}

function dims(weight: Tensor, what: string): { O: number; K: number } {
  if (weight.dtype !== 'f32' || weight.shape.length < 2) throw new ShapeError(`${what}: weight must be an f32 tensor [O, ...], got ${weight.toString()}`);
  const O = weight.shape[0];
  return { O, K: weight.size / O };
}

/**
 * num_itrs power iterations from u0 [1, O] (or [O]) with normalize(z) = z / max(||z||, eps),
 * sigma = (v W^T) u^T, weight / sigma. With `update`, u0 <- u and sv0 <- sigma in place
 * (the official module's train mode); without, u0 is only read (eval).
 */
export function spectralNorm(
  weight: Tensor, u0: Tensor, opts: { eps: number; iterations?: number; update?: { sv0: Tensor } },
): SpectralNormResult {
  const { O, K } = dims(weight, 'spectralNorm');
  if (u0.size !== O || u0.dtype !== 'f32') throw new ShapeError(`spectralNorm: u0 must hold ${O} f32 values (one per output channel), got ${u0.toString()}`);
  const iterations = opts.iterations ?? 1;
  if (!Number.isInteger(iterations) || iterations < 1) throw new ShapeError(`spectralNorm: iterations must be a positive integer, got ${iterations}`);
  const rt = weight.rt;
  const params = [O, K, f32(opts.eps), weight.size];
  let u = u0;
  let v: Tensor | undefined;
  let sigma: Tensor | undefined;
  for (let it = 0; it < iterations; it++) {
    const un = Tensor.empty(rt, [O], 'f32', 'spectral_norm.u');
    v?.dispose();
    sigma?.dispose();
    v = Tensor.empty(rt, [K], 'f32', 'spectral_norm.v');
    sigma = Tensor.empty(rt, [1], 'f32', 'spectral_norm.sigma');
    rt.dispatch(
      { family: 'spectral_norm', entry: 'spectral_norm_power', overrides: { WG } },
      { params, bindings: [weight.binding, u.binding, un.binding, v.binding, sigma.binding], workgroups: 1, label: `spectral_norm_power[${O}x${K}]` },
    );
    if (u !== u0) u.dispose();
    u = un;
  }
  const eff = Tensor.empty(rt, weight.shape, 'f32', 'spectral_norm.weight');
  rt.dispatch(
    { family: 'spectral_norm', entry: 'spectral_norm_scale', overrides: { WG } },
    { params, bindings: [weight.binding, sigma!.binding, eff.binding], workgroups: Math.ceil(weight.size / WG), label: 'spectral_norm_scale' },
  );
  if (opts.update) {
    if (opts.update.sv0.size !== 1) throw new ShapeError(`spectralNorm: sv0 must hold one value, got ${opts.update.sv0.toString()}`);
    rt.dispatch(
      { family: 'spectral_norm', entry: 'spectral_norm_store', overrides: { WG } },
      { params, bindings: [u.binding, sigma!.binding, u0.binding, opts.update.sv0.binding], workgroups: 1, label: 'spectral_norm_store' },
    );
  }
  return { weight: eff, sigma: sigma!, u, v: v! };
}

/**
 * dW = G / sigma - (sum(G * W) / sigma^2) * u v^T for W_eff = W / sigma, given
 * G = dL/dW_eff (weight's shape) and the sigma, u, v of spectralNorm. Written into
 * opts.dweight when given (added to it with accumulate).
 */
export function spectralNormBackward(
  weight: Tensor, sn: Pick<SpectralNormResult, 'sigma' | 'u' | 'v'>, dweightEff: Tensor,
  opts: { dweight?: Tensor; accumulate?: boolean } = {},
): Tensor {
  const { O, K } = dims(weight, 'spectralNormBackward');
  if (dweightEff.size !== weight.size) throw new ShapeError(`spectralNormBackward: gradient ${dweightEff.toString()} must match weight ${weight.toString()}`);
  if (sn.u.size !== O || sn.v.size !== K || sn.sigma.size !== 1) throw new ShapeError(`spectralNormBackward: u/v/sigma must be [${O}]/[${K}]/[1] from spectralNorm`);
  if (opts.accumulate && !opts.dweight) throw new ShapeError('spectralNormBackward: accumulate needs opts.dweight to add into');
  if (opts.dweight && opts.dweight.size !== weight.size) throw new ShapeError(`spectralNormBackward: dweight ${opts.dweight.toString()} must match weight ${weight.toString()}`);
  const rt = weight.rt;
  const params = [O, K, f32(0), weight.size];
  const s = Tensor.empty(rt, [1], 'f32', 'spectral_norm.gw');
  rt.dispatch(
    { family: 'spectral_norm', entry: 'spectral_norm_backward_dot', overrides: { WG } },
    { params, bindings: [dweightEff.binding, weight.binding, s.binding], workgroups: 1, label: 'spectral_norm_backward_dot' },
  );
  const dweight = opts.dweight ?? Tensor.empty(rt, weight.shape, 'f32', 'spectral_norm.dweight');
  rt.dispatch(
    { family: 'spectral_norm', entry: 'spectral_norm_backward', overrides: { WG, ACCUMULATE: opts.accumulate ? 1 : 0 } },
    {
      params,
      bindings: [dweightEff.binding, sn.sigma.binding, s.binding, sn.u.binding, sn.v.binding, dweight.binding],
      workgroups: Math.ceil(weight.size / WG),
      label: 'spectral_norm_backward',
    },
  );
  s.dispose();
  return dweight;
}
