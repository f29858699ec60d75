// DDIM inversion of the 'ddim-inverse' dataset path (pipeline/dataset/invert.ts) on the
// built-in tiny model (random weights):
//  - encodeLatent = scaling_factor x the VAE posterior mean of 2 rgb - 1;
//  - inversion steps equal a float64 host reference of DDIMInverseScheduler's update
//    (alphas from the SD 1.5 scaled_linear betas, computed here) fed the UNet's noise
//    predictions at the reference trajectory;
//  - inverting over N steps and sampling back with DDIM (no guidance) reconstructs the
//    latent with the error a first-order method implies: DDIM is the Euler method of the
//    probability-flow ODE in (x / sqrt(a), sigma = sqrt((1 - a) / a)), and inversion
//    evaluates each step's noise at the other end of the step, so the round trip's error
//    is O(1/N): doubling N must halve it (ratio 1/2 +- 0.15), and the error at 4N must be
//    within 1.3 x e(N) / 4. Measured (relative L2, t up to 301): N=10 2.7e-2, N=20
//    1.4e-2, N=40 7.1e-3 (ratios 0.52, 0.51); to t=901 the ratios are 0.58 / 0.52 at
//    relative errors 1.06 / 0.62 / 0.36 (too slow to run here).
//    The latent is the VAE encoding rescaled to unit RMS: the random VAE's latents have RMS
//    0.03, and at that size the UNet's group norms make its noise prediction change as
//    fast as 1/|x| (a tiny image latent is not what a trained VAE gives: scaling_factor is
//    chosen to make SD latents unit-variance); there the round trip does not converge at
//    any affordable N.
//  - the dataset's own case (50 steps, features at t = 1: one inverse step) round-trips
//    within 1e-4.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.js';
import { DDIMScheduler } from '../../src/models/schedulers/index.js';
import { StableDiffusion } from '../../src/models/sd.js';
import { concat } from '../../src/nn/layout.js';
import { encodeLatent, invertLatent, inversionTimesteps } from '../../src/pipeline/dataset/invert.js';
import { denoise } from '../../src/pipeline/grounded/denoise.js';
import { BUILTIN_TINY_CONFIGS } from '../../src/pipeline/grounding_module.js';
import { scope } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { compare, randomArray, runtime } from '../helpers.js';

let rt: Runtime;
let sd: StableDiffusion;
let text: Tensor;
let x0: Float32Array;
const S = 64;

beforeAll(async () => {
  rt = await runtime();
  sd = StableDiffusion.random(rt, BUILTIN_TINY_CONFIGS, 0);
  text = sd.encodePrompts(['', 'a photograph of a cat']);
  const rgb = randomArray(3 * S * S, 5, 0, 1);
  const enc = encodeLatent(sd, Tensor.from(rt, rgb, [1, 3, S, S]));
  const e = await enc.toArray();
  enc.dispose();
  let q = 0;
  for (const v of e) q += v * v;
  const k = 1 / Math.sqrt(q / e.length);
  x0 = e.map((v) => v * k);
});
afterAll(() => {
  text?.dispose();
  sd?.dispose();
});

/** SD 1.5 alphas_cumprod in float64: scaled_linear betas, cumulative product. */
function alphasCumprod(): Float64Array {
  const [b0, b1] = [Math.sqrt(0.00085), Math.sqrt(0.012)];
  const out = new Float64Array(1000);
  let a = 1;
  for (let i = 0; i < 1000; i++) {
    const beta = (b0 + ((b1 - b0) * i) / 999) ** 2;
    a *= 1 - beta;
    out[i] = a;
  }
  return out;
}

const relL2 = (a: ArrayLike<number>, b: ArrayLike<number>) => compare(a, b).relL2;

async function roundTrip(latent: Float32Array, steps: number, upTo: number): Promise<number> {
  const x = Tensor.from(rt, latent, [1, 4, 8, 8]);
  const inv = await invertLatent(sd, x, text, { steps, upTo, guidanceScale: 1 });
  x.dispose();
  const sch = new DDIMScheduler(sd.schedulerConfig);
  sch.setTimesteps(steps);
  sch.timesteps = sch.timesteps.filter((t) => t <= upTo);
  const run = await denoise(sd, { text, latents: inv, scheduler: sch, guidanceScale: 1, featureStep: -1, taps: [] });
  const back = await run.latents.toArray();
  run.latents.dispose();
  return relL2(back, latent);
}

describe('DDIM inversion (tiny model)', () => {
  it('encodeLatent is scaling_factor x the posterior mean of 2 rgb - 1', async () => {
    const rgb = randomArray(3 * S * S, 9, 0, 1);
    const got = encodeLatent(sd, Tensor.from(rt, rgb, [1, 3, S, S]));
    const ref = scope(() => sd.vae.encode(rt, Tensor.from(rt, rgb.map((v) => 2 * v - 1), [1, 3, S, S])).mean);
    const [g, r] = [await got.toArray(), await ref.toArray()];
    got.dispose();
    ref.dispose();
    expect(relL2(g, r.map((v) => v * 0.18215))).toBeLessThan(1e-5);
  });

  it('inversion steps equal the float64 DDIMInverseScheduler update (50 steps, to t = 41)', async () => {
    const ts = inversionTimesteps(sd, 50, 41);
    expect(ts).toEqual([1, 21, 41]);
    const ac = alphasCumprod();
    let x = Float64Array.from(x0);
    for (const t of ts) {
      // The UNet's guided (g = 1: conditional) prediction at the reference trajectory.
      const xt = Tensor.from(rt, Float32Array.from(x), [1, 4, 8, 8]);
      const eps = scope(() => sd.unet.forward(rt, concat([xt, xt], 0), [t], text).sample);
      const e = await eps.toArray();
      eps.dispose();
      xt.dispose();
      const cond = e.subarray(x.length);
      const from = t - 20;
      const aFrom = from >= 0 ? ac[from] : ac[0]; // set_alpha_to_one false: the initial alpha is alphas_cumprod[0]
      const aTo = ac[t];
      x = x.map((v, i) => (Math.sqrt(aTo) * (v - Math.sqrt(1 - aFrom) * cond[i])) / Math.sqrt(aFrom) + Math.sqrt(1 - aTo) * cond[i]);
    }
    const xin = Tensor.from(rt, x0, [1, 4, 8, 8]);
    const got = await invertLatent(sd, xin, text, { steps: 50, upTo: 41, guidanceScale: 1 });
    xin.dispose();
    const g = await got.toArray();
    got.dispose();
    expect(relL2(g, x)).toBeLessThan(1e-4);
  });

  it('inverting and sampling back reconstructs the latent with first-order error in 1/N', async () => {
    const errs: number[] = [];
    for (const N of [10, 20, 40]) errs.push(await roundTrip(x0, N, 301));
    console.log(`DDIM round trip to t=301, relative L2: N=10 ${errs[0].toExponential(2)}, N=20 ${errs[1].toExponential(2)}, N=40 ${errs[2].toExponential(2)}`);
    for (let i = 1; i < errs.length; i++) {
      expect(errs[i] / errs[i - 1]).toBeGreaterThan(0.35);
      expect(errs[i] / errs[i - 1]).toBeLessThan(0.65);
    }
    expect(errs[2]).toBeLessThanOrEqual((1.3 * errs[0]) / 4);
  });

  it("the dataset's inversion (50 steps, to the feature timestep 1) round-trips within 1e-4", async () => {
    const err = await roundTrip(x0, 50, 1);
    console.log(`DDIM round trip, 50 steps to t=1: relative L2 ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
  });
});

