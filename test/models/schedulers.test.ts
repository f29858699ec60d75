// Schedulers: DDIM inversion against a float64 recurrence, inversion + sampling round
// trip, and config validation. The diffusers golden fixture runs through the parity
// handler (src/pipeline/parity/schedulers.ts) in test/pipeline/parity.test.ts.
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/gpu/errors.js';
import { fakeEps } from '../../src/pipeline/parity/schedulers.js';
import {
  createScheduler, DDIMInverseScheduler, DDIMScheduler, schedulerNameForClass,
} from '../../src/models/schedulers/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { expectClose, randomArray, runtime } from '../helpers.js';

const SD_CONFIG = {
  num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear',
  steps_offset: 1, set_alpha_to_one: false, clip_sample: false,
};

describe('DDIM inversion', () => {
  it('matches the float64 inversion recurrence', async () => {
    const rt = await runtime();
    const shape = [2, 4, 8, 8];
    const x0 = randomArray(512, 7, -1.5, 1.5);
    const inv = new DDIMInverseScheduler(SD_CONFIG);
    inv.setTimesteps(10);
    expect(inv.timesteps).toEqual([1, 101, 201, 301, 401, 501, 601, 701, 801, 901]);
    let x = Tensor.from(rt, x0, shape);
    // float64: x <- sqrt(a_t) x0_pred + sqrt(1 - a_t) eps, from a_{t - 100} (or a_0 at the start).
    const ac = inv.alphasCumprod;
    let ref = Float64Array.from(x0);
    for (const t of inv.timesteps) {
      const eps = fakeEps(x, t);
      const next = inv.step(eps, t, x);
      const a = t - 100 >= 0 ? ac[t - 100] : ac[0];
      const c = Math.fround((0.01 * t) / 1000);
      ref = ref.map((v) => {
        const e = 0.1 * v + c;
        const pred = (v - Math.sqrt(1 - a) * e) / Math.sqrt(a);
        return Math.sqrt(ac[t]) * pred + Math.sqrt(1 - ac[t]) * e;
      });
      eps.dispose();
      x.dispose();
      x = next;
    }
    expectClose(await x.toArray(), ref, { label: 'ddim inversion 10 steps', relL2: 1e-5 });
  });

  it('inversion followed by DDIM sampling recovers the input', async () => {
    const rt = await runtime();
    const shape = [1, 4, 8, 8];
    const x0 = randomArray(256, 8, -1, 1);
    const n = 50;
    const inv = new DDIMInverseScheduler(SD_CONFIG);
    const fwd = new DDIMScheduler(SD_CONFIG);
    inv.setTimesteps(n);
    fwd.setTimesteps(n);
    expect([...inv.timesteps].reverse()).toEqual(fwd.timesteps);
    let x = Tensor.from(rt, x0, shape);
    for (const s of [inv, fwd]) {
      for (const t of s.timesteps) {
        const eps = fakeEps(x, t);
        const next = s.step(eps, t, x);
        eps.dispose();
        x.dispose();
        x = next;
      }
    }
    const r = expectClose(await x.toArray(), x0, { label: 'invert + sample', relL2: 5e-2 });
    console.log(`DDIM invert+sample (${n} steps): relL2 ${r.relL2.toExponential(2)}`);
  });
});

describe('scheduler configs', () => {
  it('ignores keys the class does not know and rejects bad or unsupported values', () => {
    expect(() => createScheduler('ddim', { ...SD_CONFIG, skip_prk_steps: true, _class_name: 'X' })).not.toThrow();
    expect(() => createScheduler('ddim', { beta_start: '0.1' })).toThrow(InputError);
    expect(() => createScheduler('ddim', { beta_schedule: 'sigmoid' })).toThrow(/beta_schedule/);
    expect(() => createScheduler('euler', { use_karras_sigmas: true })).toThrow(/karras/);
    expect(() => createScheduler('dpm++2m', { algorithm_type: 'sde-dpmsolver++' })).toThrow(/algorithm_type/);
    expect(() => createScheduler('pndm', { skip_prk_steps: false })).toThrow(/skip_prk_steps/);
    expect(() => schedulerNameForClass('diffusers.LMSDiscreteScheduler')).toThrow(InputError);
    const s = createScheduler('ddim', { ...SD_CONFIG, timestep_spacing: 'trailing' });
    s.setTimesteps(4);
    expect(s.timesteps).toEqual([999, 749, 499, 249]);
  });
});
