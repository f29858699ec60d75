// Parity for the scheduler fixture: every scheduler in the manifest is rebuilt from its
// resolved diffusers config and run with the manifest's fake model for every stored step
// count; timesteps must match exactly, everything else within the manifest's tolerance
// (max_abs_diff / max_abs_ref).
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { Runtime } from '../../gpu/runtime.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { createScheduler, schedulerNameForClass, type Scheduler } from '../../models/schedulers/index.js';
import { linearCombination } from '../../nn/combine.js';
import { Tensor } from '../../tensor/tensor.js';
import type { ParityCheck, ParityHandler } from './types.js';

/** The fixture's fake UNet: eps = 0.1 * x_in + float32(0.01 * t / 1000). */
export const fakeEps = (xIn: Tensor, t: number): Tensor => linearCombination([[0.1, xIn]], Math.fround((0.01 * t) / 1000));

/** set_timesteps already done; returns stacked latents [n+1, ...], model inputs and eps [n, ...]. */
async function runLoop(rt: Runtime, s: Scheduler, xT: Float32Array, shape: number[]) {
  const size = xT.length;
  const ts = s.timesteps;
  const latents = new Float32Array((ts.length + 1) * size);
  const inputs = new Float32Array(ts.length * size);
  const epss = new Float32Array(ts.length * size);
  const x = Tensor.from(rt, xT, shape);
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

export const handler: ParityHandler = {
  async run(dir, manifest, log) {
    const tol = Number((manifest.tolerance as { max?: number } | undefined)?.max ?? 1e-5);
    const specs = (manifest.schedulers ?? {}) as Record<string, { class: string; config: Record<string, unknown> }>;
    if (Object.keys(specs).length === 0) throw new InputError(`${dir}: manifest has no 'schedulers'`);
    const defs = ((manifest.io as { tensors?: Record<string, { definition?: string }> } | undefined)?.tensors) ?? {};
    const io = await SafetensorsFile.open(join(dir, 'io.safetensors'));
    const rt = await Runtime.create();
    const checks: ParityCheck[] = [];
    const rel = (name: string, actual: ArrayLike<number>, expected: ArrayLike<number>) =>
      checks.push({ name, actual: Array.from(actual), expected: Array.from(expected), metric: 'rel_max', tol });
    try {
      const xTInfo = io.info('x_T');
      const xT = await io.readF32('x_T');
      for (const [key, spec] of Object.entries(specs)) {
        const sched = createScheduler(schedulerNameForClass(spec.class), spec.config);
        if (io.tensors.has(`${key}.alphas_cumprod`)) rel(`${key}.alphas_cumprod`, sched.alphasCumprod, await io.readF32(`${key}.alphas_cumprod`));
        const escaped = key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        const counts = [...io.tensors.keys()]
          .map((k) => new RegExp(`^${escaped}\\.n(\\d+)\\.timesteps$`).exec(k))
          .filter((m): m is RegExpExecArray => m !== null)
          .map((m) => Number(m[1]));
        for (const n of counts) {
          const p = `${key}.n${n}`;
          log(`schedulers: ${p}`);
          sched.setTimesteps(n);
          checks.push({ name: `${p}.timesteps`, actual: sched.timesteps, expected: Array.from(await io.readF32(`${p}.timesteps`)), metric: 'exact', tol: 0 });
          if (io.tensors.has(`${p}.sigmas`)) rel(`${p}.sigmas`, (sched as unknown as { sigmas: number[] }).sigmas, await io.readF32(`${p}.sigmas`));
          if (io.tensors.has(`${p}.init_noise_sigma`)) rel(`${p}.init_noise_sigma`, [sched.initNoiseSigma], await io.readF32(`${p}.init_noise_sigma`));
          const { latents, inputs, epss } = await runLoop(rt, sched, xT, xTInfo.shape);
          rel(`${p}.latents`, latents, await io.readF32(`${p}.latents`));
          if (io.tensors.has(`${p}.model_inputs`)) rel(`${p}.model_inputs`, inputs, await io.readF32(`${p}.model_inputs`));
          if (io.tensors.has(`${p}.eps`)) rel(`${p}.eps`, epss, await io.readF32(`${p}.eps`));
        }
        // add_noise: one timestep per batch row, on the schedule its definition names.
        const noisyName = `${key}.add_noise.noisy`;
        if (io.tensors.has(noisyName)) {
          const steps = /set_timesteps\((\d+)\)/.exec(defs[noisyName]?.definition ?? '');
          sched.setTimesteps(steps ? Number(steps[1]) : Math.max(...counts));
          const x0Info = io.info('add_noise.x0');
          const x0 = await io.readF32('add_noise.x0');
          const noise = await io.readF32('add_noise.noise');
          const ts = await io.readF32(`${key}.add_noise.timesteps`);
          const rows = x0Info.shape[0];
          const rowSize = x0.length / rows;
          const rowShape = [1, ...x0Info.shape.slice(1)];
          const out = new Float32Array(x0.length);
          for (let b = 0; b < rows; b++) {
            const xb = Tensor.from(rt, x0.subarray(b * rowSize, (b + 1) * rowSize), rowShape);
            const nb = Tensor.from(rt, noise.subarray(b * rowSize, (b + 1) * rowSize), rowShape);
            const y = sched.addNoise(xb, nb, ts[b]);
            out.set(await y.toArray(), b * rowSize);
            for (const t of [xb, nb, y]) t.dispose();
          }
          rel(noisyName, out, await io.readF32(noisyName));
        }
      }
      return checks;
    } finally {
      rt.destroy();
      await io.close();
    }
  },
};
