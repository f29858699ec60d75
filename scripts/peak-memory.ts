// Peak GPU memory of one SD 1.x generation step, per stage, as `generate` runs it: the text
// encoder on the CFG pair of prompts, one classifier-free-guidance UNet step (batch 2) with
// the scheduler step, and the VAE decode, with deterministic random weights in f32 or f16.
// Memory is the buffer pool's accounting (Runtime.memory()): `peak` is the most bytes held
// by live tensors at once (weights included); `allocated` adds the pool's free buffers kept
// for reuse, i.e. what the device holds (at a stage's end it is the stage's maximum, since
// only pool.trim gives buffers back; generate trims after the denoising loop, and so does
// this script). Slow on a software adapter (SD 1.5 at 512x512 is about 2 TFLOP here).
//   npx tsx scripts/peak-memory.ts [--size 512] [--dtype f32|f16] [--model sd15|tiny] [--json FILE]
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatBytes } from '../src/gpu/errors.js';
import { Runtime } from '../src/gpu/runtime.js';
import { checkModelDtype } from '../src/models/precision.js';
import { createScheduler } from '../src/models/schedulers/index.js';
import { SD15_CONFIGS, StableDiffusion, TINY_CONFIGS } from '../src/models/sd.js';
import { linearCombination } from '../src/nn/combine.js';
import { concat, slice } from '../src/nn/layout.js';
import { initialLatents } from '../src/pipeline/latents.js';
import { scope } from '../src/tensor/scope.js';

const { values } = parseArgs({ options: { size: { type: 'string' }, dtype: { type: 'string' }, model: { type: 'string' }, json: { type: 'string' } } });
const size = Number(values.size ?? 512);
const dtype = values.dtype ?? 'f32';
const model = values.model ?? 'sd15';
if (!Number.isInteger(size) || size < 8 || size % 8 !== 0) throw new Error(`--size must be a multiple of 8, got ${values.size}`);
if (model !== 'sd15' && model !== 'tiny') throw new Error(`--model must be sd15 or tiny, got ${model}`);

const rt = await Runtime.create();
checkModelDtype(rt, dtype, '--dtype');
const stages: Array<{ stage: string; peakBytes: number; allocatedBytes: number; seconds: number }> = [];
const mem = () => rt.memory();
let t = performance.now();
/** Runs one stage to completion on the GPU and records its peak (weights included). */
async function stage<T>(name: string, fn: () => T): Promise<T> {
  rt.pool.resetPeak();
  t = performance.now();
  const out = fn();
  await rt.sync();
  const m = mem();
  stages.push({ stage: name, peakBytes: m.peakBytes, allocatedBytes: m.liveBytes + m.cachedBytes, seconds: (performance.now() - t) / 1000 });
  process.stderr.write(`${name}: peak ${formatBytes(m.peakBytes)}, allocated ${formatBytes(m.liveBytes + m.cachedBytes)}, ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  return out;
}

const sd = await stage('weights', () => StableDiffusion.random(rt, model === 'sd15' ? SD15_CONFIGS : TINY_CONFIGS, 0, { dtype }));
const weightBytes = mem().liveBytes;
const f = sd.vae.scaleFactor;
const scheduler = createScheduler('ddim', sd.schedulerConfig);
scheduler.setTimesteps(50);
const t0 = scheduler.timesteps[0];
const text = await stage('text_encoder', () => sd.encodePrompts(['', 'a photograph of a dog and a cat']));
const latents = initialLatents(rt, 0, [1, sd.unet.resolved.inChannels, size / f, size / f], scheduler.initNoiseSigma);
const next = await stage('unet_cfg_step', () => scope(() => {
  const input = scheduler.scaleModelInput(concat([latents, latents], 0), t0);
  const out = sd.unet.forward(rt, input, [t0], text);
  const guided = linearCombination([[1 - 7.5, slice(out.sample, 0, 0, 1)], [7.5, slice(out.sample, 0, 1, 2)]]);
  return scheduler.step(guided, t0, latents);
}));
text.dispose();
latents.dispose();
rt.pool.trim(); // as generate() does before the VAE
const image = await stage('vae_decode', () => scope(() => {
  const decoded = sd.vae.decode(rt, linearCombination([[1 / sd.vae.config.scaling_factor, next]]));
  return linearCombination([[0.5, decoded]], 0.5, [0, 1]);
}));
const pixels = await image.toArray();
if (!pixels.every(Number.isFinite)) throw new Error('the decoded image has non-finite values');
const peak = Math.max(...stages.map((s) => s.peakBytes));
const allocated = Math.max(...stages.map((s) => s.allocatedBytes));
const report = {
  model, size, dtype, adapter: rt.adapterName, date: new Date().toISOString().slice(0, 10),
  weightBytes, peakBytes: peak, allocatedBytes: allocated, stages,
};
console.log(`${model} ${size}x${size} ${dtype} on ${rt.adapterName}: weights ${formatBytes(weightBytes)}, peak ${formatBytes(peak)} ` +
  `(${stages.map((s) => `${s.stage} ${formatBytes(s.peakBytes)} in ${s.seconds.toFixed(0)} s`).join(', ')}), most allocated ${formatBytes(allocated)}`);
if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
image.dispose();
next.dispose();
sd.dispose();
rt.destroy();
