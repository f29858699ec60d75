// Schedulers against the diffusers golden fixtures (everything read from the manifest:
// scheduler classes, resolved configs, step counts, shapes, the fake model's constants
// are those documented there), plus DDIM inversion against a float64 recurrence.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/gpu/errors.js';
import type { Runtime } from '../../src/gpu/runtime.js';
import { linearCombination } from '../../src/nn/combine.js';
import {
  createScheduler, DDIMInverseScheduler, DDIMScheduler, schedulerNameForClass, type Scheduler,
} from '../../src/models/schedulers/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { expectClose, goldenDir, randomArray, runtime } from '../helpers.js';

interface StoredTensor { shape: number[]; data: Float32Array | number[] }

/** Minimal safetensors reader (F32 -> Float32Array, I64 -> numbers). */
function readSafetensors(path: string): Map<string, StoredTensor> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, StoredTensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bytes = buf.buffer.slice(buf.byteOffset + 8 + n + e.data_offsets[0], buf.byteOffset + 8 + n + e.data_offsets[1]);
    const data = e.dtype === 'I64' ? Array.from(new BigInt64Array(bytes), Number) : e.dtype === 'F64' ? Float32Array.from(new Float64Array(bytes)) : new Float32Array(bytes);
    out.set(name, { shape: e.shape, data });
  }
  return out;
}

/** JSON with Python's Infinity / NaN literals (json.dump writes them). */
function parsePythonJson(text: string): Record<string, unknown> {
  const marked = text.replace(/(:\s*|\[\s*|,\s*)(-?Infinity|NaN)(?=\s*[,\]}])/g, '$1"__py_$2"');
  return JSON.parse(marked, (_, v) => (v === '__py_Infinity' ? Infinity : v === '__py_-Infinity' ? -Infinity : v === '__py_NaN' ? NaN : v));
}

/** max |a - ref| / max |ref| */
function relMax(actual: ArrayLike<number>, ref: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(actual[i])) return Infinity;
    d = Math.max(d, Math.abs(actual[i] - ref[i]));
    m = Math.max(m, Math.abs(ref[i]));
  }
  return d / Math.max(m, 1e-30);
}

/** The fixture's fake UNet: eps = 0.1 * x_in + float32(0.01 * t / 1000). */
const fakeEps = (xIn: Tensor, t: number): Tensor => linearCombination([[0.1, xIn]], Math.fround((0.01 * t) / 1000));

/** The sampling loop of the fixture; returns the stacked latents, model inputs and eps. */
async function runLoop(rt: Runtime, s: Scheduler, xT: StoredTensor) {
  const shape = xT.shape;
  const size = xT.data.length;
  const ts = s.timesteps;
  const latents = new Float32Array((ts.length + 1) * size);
  const inputs = new Float32Array(ts.length * size);
  const epss = new Float32Array(ts.length * size);
  const x = Tensor.from(rt, xT.data, shape);
  let cur = linearCombination([[s.initNoiseSigma, x]]);
  x.dispose();
  latents.set(await cur.toArray(), 0);
  for (let i = 0; i < ts.length; i++) {
    const xIn = s.scaleModelInput(cur, ts[i]);
    const eps = fakeEps(xIn, ts[i]);
    const next = s.step(eps, ts[i], cur);
    inputs.set(await xIn.toArray(), i * size);
    epss.set(await eps.toArray(), i * size);
    latents.set(await next.toArray(), (i + 1) * size);
    if (xIn !== cur) xIn.dispose();
    eps.dispose();
    cur.dispose();
    cur = next;
  }
  cur.dispose();
  s.reset();
  return { latents, inputs, epss };
}

const dir = goldenDir('schedulers');

describe.runIf(dir !== null)('schedulers vs diffusers golden fixtures', () => {
  const root = dir ?? '';
  const manifest = dir ? parsePythonJson(readFileSync(join(root, 'manifest.json'), 'utf8')) : {};
  const tol = (manifest.tolerance as { max: number } | undefined)?.max ?? 0;
  const entries = Object.entries((manifest.schedulers ?? {}) as Record<string, { class: string; config: Record<string, unknown> }>);
  const ioDefs = ((manifest.io as { tensors?: Record<string, { definition: string }> } | undefined)?.tensors) ?? {};

  it.each(entries)('%s', async (key, spec) => {
    const rt = await runtime();
    const io = readSafetensors(join(root, 'io.safetensors'));
    const get = (name: string): StoredTensor => {
      const t = io.get(name);
      if (!t) throw new Error(`fixture has no tensor '${name}'`);
      return t;
    };
    const sched = createScheduler(schedulerNameForClass(spec.class), spec.config);
    const report: string[] = [];
    const check = (label: string, actual: ArrayLike<number>, ref: ArrayLike<number>) => {
      expect(actual.length, `${label} length`).toBe(ref.length);
      const e = relMax(actual, ref);
      report.push(`${label} ${e.toExponential(2)}`);
      expect(e, `${key} ${label}: max_abs_diff/max_abs_ref = ${e}`).toBeLessThanOrEqual(tol);
    };
    check('alphas_cumprod', sched.alphasCumprod, get(`${key}.alphas_cumprod`).data);

    const counts = [...io.keys()]
      .map((k) => new RegExp(`^${key.replace(/[+]/g, '\\+')}\\.n(\\d+)\\.timesteps$`).exec(k))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]));
    expect(counts.length).toBeGreaterThan(0);
    const xT = get('x_T');
    for (const n of counts) {
      const p = `${key}.n${n}`;
      sched.setTimesteps(n);
      expect(sched.timesteps, `${p}.timesteps`).toEqual(Array.from(get(`${p}.timesteps`).data));
      const storedSigmas = io.get(`${p}.sigmas`);
      if (storedSigmas) check(`n${n}.sigmas`, (sched as unknown as { sigmas: number[] }).sigmas, storedSigmas.data);
      check(`n${n}.init_noise_sigma`, [sched.initNoiseSigma], get(`${p}.init_noise_sigma`).data);
      const { latents, inputs, epss } = await runLoop(rt, sched, xT);
      check(`n${n}.latents`, latents, get(`${p}.latents`).data);
      check(`n${n}.model_inputs`, inputs, get(`${p}.model_inputs`).data);
      check(`n${n}.eps`, epss, get(`${p}.eps`).data);
    }

    // add_noise: one timestep per batch row, on the schedule named in the definition.
    const noisyRef = io.get(`${key}.add_noise.noisy`);
    if (noisyRef) {
      const steps = /set_timesteps\((\d+)\)/.exec(ioDefs[`${key}.add_noise.noisy`]?.definition ?? '');
      sched.setTimesteps(steps ? Number(steps[1]) : Math.max(...counts));
      const x0 = get('add_noise.x0');
      const noise = get('add_noise.noise');
      const ts = get(`${key}.add_noise.timesteps`).data;
      const rowShape = [1, ...x0.shape.slice(1)];
      const rowSize = x0.data.length / x0.shape[0];
      const out = new Float32Array(x0.data.length);
      for (let b = 0; b < x0.shape[0]; b++) {
        const row = (d: StoredTensor) => Tensor.from(rt, Float32Array.from(d.data).subarray(b * rowSize, (b + 1) * rowSize), rowShape);
        const xb = row(x0);
        const nb = row(noise);
        const y = sched.addNoise(xb, nb, ts[b]);
        out.set(await y.toArray(), b * rowSize);
        for (const t of [xb, nb, y]) t.dispose();
      }
      check('add_noise', out, noisyRef.data);
    }
    console.log(`${key}: ${report.join(', ')}`);
  });
});

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
