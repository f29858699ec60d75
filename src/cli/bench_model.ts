// `grounded-sd bench model`: the real SD 1.5 architecture (SD15_* configs) with
// deterministic random weights (no download), timing one text encode (batch 2: negative
// and positive prompt), one UNet step with classifier-free guidance (batch 2) and one
// VAE decode at the requested image size. Reports seconds per stage, GFLOP/s from FLOPs
// counted analytically per layer (convolutions, linears and the attention products; the
// norms and elementwise ops are left out, a few percent), and the runtime's peak GPU bytes.
import { parseArgs } from 'node:util';
import { InputError } from '../gpu/errors.js';
import { Runtime } from '../gpu/runtime.js';
import { writeFileAtomic } from '../io/atomic.js';
import { SD15_CONFIGS, StableDiffusion } from '../models/sd.js';
import { namedParams, type Module } from '../nn/module.js';
import { Tensor } from '../tensor/tensor.js';

export const benchModelUsage = 'grounded-sd bench model --model sd15 --size S [--dtype f32|f16] [--json FILE] [--steps-only] [--warmup N]';

export interface StageResult {
  stage: string;
  seconds: number;
  gflop: number;
  gflops: number;
}

/** 2 * MACs of every conv/linear weight under `root` whose name `resolution` places
 *  (null skips it): [O, I, kh, kw] convs over their output pixels, [O, I] linears over
 *  their tokens; plus QK^T and PV of every attention (`attention(name)` gives the query
 *  and key counts of the module holding a to_q). Counts are per batch row. */
function countFlops(root: Module, tokens: (name: string) => number | null, attention: (name: string) => [number, number] | null): number {
  let flops = 0;
  for (const [name, p] of namedParams(root)) {
    if (!name.endsWith('.weight') || p.shape.length < 2) continue;
    if (/(token|position)_embedding\.weight$/.test(name)) continue;
    const n = tokens(name);
    if (n === null) continue;
    flops += 2 * n * p.shape.reduce((a, b) => a * b, 1);
    if (name.endsWith('to_q.weight')) {
      const qk = attention(name);
      if (qk) flops += 4 * qk[0] * qk[1] * p.shape[0];
    }
  }
  return flops;
}

/** Output pixels of a UNet layer at latent size h x w, from its diffusers name. */
export function unetFlops(sd: StableDiffusion, h: number, w: number, context: number): number {
  const n = sd.unet.resolved.blockOut.length;
  const px = (level: number) => (h >> level) * (w >> level);
  const level = (name: string): number => {
    let m: RegExpMatchArray | null;
    if ((m = name.match(/^down_blocks\.(\d+)\.downsamplers/))) return Number(m[1]) + 1;
    if ((m = name.match(/^down_blocks\.(\d+)\./))) return Number(m[1]);
    if (name.startsWith('mid_block.')) return n - 1;
    if ((m = name.match(/^up_blocks\.(\d+)\.upsamplers/))) return n - 2 - Number(m[1]);
    if ((m = name.match(/^up_blocks\.(\d+)\./))) return n - 1 - Number(m[1]);
    return 0;
  };
  const tokens = (name: string) => {
    if (name.startsWith('time_embedding.') || name.includes('time_emb_proj')) return 1;
    if (/attn2\.to_[kv]\.weight$/.test(name)) return context;
    return px(level(name));
  };
  const attention = (name: string): [number, number] => [px(level(name)), name.includes('attn2') ? context : px(level(name))];
  return countFlops(sd.unet, tokens, attention);
}

export function vaeDecodeFlops(sd: StableDiffusion, h: number, w: number): number {
  const at = (k: number) => (h << k) * (w << k);
  const tokens = (name: string): number | null => {
    let m: RegExpMatchArray | null;
    if (name.startsWith('encoder.') || name.startsWith('quant_conv.')) return null;
    if ((m = name.match(/^decoder\.up_blocks\.(\d+)\.upsamplers/))) return at(Number(m[1]) + 1);
    if ((m = name.match(/^decoder\.up_blocks\.(\d+)\./))) return at(Number(m[1]));
    if (name.startsWith('decoder.conv_out')) return at(Math.log2(sd.vae.scaleFactor));
    return at(0);
  };
  return countFlops(sd.vae, tokens, () => [at(0), at(0)]);
}

export function clipFlops(sd: StableDiffusion, length: number): number {
  return countFlops(sd.textEncoder, () => length, () => [length, length]);
}

async function timeStage(rt: Runtime, stage: string, flops: number, warmup: number, run: () => Tensor[]): Promise<StageResult> {
  for (let i = 0; i <= warmup; i++) {
    const t0 = performance.now();
    const outs = run();
    await outs[0].toArray();
    const seconds = (performance.now() - t0) / 1000;
    for (const t of outs) t.dispose();
    process.stderr.write(`${stage}: ${i < warmup ? 'warm-up' : 'timed'} run ${seconds.toFixed(2)} s\n`);
    if (i === warmup) return { stage, seconds, gflop: flops / 1e9, gflops: flops / 1e9 / seconds };
  }
  throw new Error('unreachable');
}

export async function benchModel(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { model: { type: 'string' }, size: { type: 'string' }, json: { type: 'string' }, 'steps-only': { type: 'boolean' }, warmup: { type: 'string' }, dtype: { type: 'string' } },
  });
  if ((values.model ?? 'sd15') !== 'sd15') throw new InputError(`--model '${values.model}' is not known (only sd15)\nusage: ${benchModelUsage}`);
  const size = Number(values.size ?? 512);
  if (!Number.isInteger(size) || size < 64 || size % 64 !== 0) throw new InputError(`--size needs a multiple of 64, got '${values.size}'`);
  const warmup = Number(values.warmup ?? 1);
  if (!Number.isInteger(warmup) || warmup < 0) throw new InputError(`--warmup needs an integer >= 0, got '${values.warmup}'`);
  const dtype = values.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new InputError(`--dtype must be f32 or f16, got '${dtype}'`);

  const rt = await Runtime.create();
  try {
    const t0 = performance.now();
    const sd = StableDiffusion.random(rt, SD15_CONFIGS, 0, { dtype });
    await rt.sync();
    process.stderr.write(`SD 1.5 random weights on ${rt.adapterName} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    const h = size / 8;
    const L = SD15_CONFIGS.text_encoder.max_position_embeddings;
    const stages: StageResult[] = [];
    const text = sd.encodePrompts(['', 'a photograph of a dog and a cat']);
    if (!values['steps-only']) stages.push(await timeStage(rt, 'text encode (B=2)', 2 * clipFlops(sd, L), warmup, () => [sd.encodePrompts(['', 'a photograph of a dog and a cat'])]));
    const latents = Tensor.from(rt, Float32Array.from({ length: 2 * 4 * h * h }, (_, i) => Math.sin(i * 0.37)), [2, 4, h, h]);
    stages.push(await timeStage(rt, `UNet step CFG (B=2, ${h}x${h} latents)`, 2 * unetFlops(sd, h, h, L), warmup, () => [sd.unet.forward(rt, latents, [500], text).sample]));
    if (!values['steps-only']) {
      const one = Tensor.from(rt, Float32Array.from({ length: 4 * h * h }, (_, i) => Math.cos(i * 0.11) * 5), [1, 4, h, h]);
      stages.push(await timeStage(rt, `VAE decode (B=1, ${size}x${size})`, vaeDecodeFlops(sd, h, h), warmup, () => [sd.vae.decode(rt, one)]));
      one.dispose();
    }
    const peakBytes = rt.memory().peakBytes;
    console.log(`bench model sd15 at ${size}x${size} on ${rt.adapterName} (random weights, ${dtype}, ${warmup} warm-up run${warmup === 1 ? '' : 's'} per stage)`);
    for (const s of stages) console.log(`  ${s.stage.padEnd(40)} ${s.seconds.toFixed(2).padStart(9)} s  ${s.gflop.toFixed(1).padStart(8)} GFLOP  ${s.gflops.toFixed(2).padStart(7)} GFLOP/s`);
    console.log(`  peak GPU memory ${(peakBytes / 2 ** 30).toFixed(2)} GiB`);
    if (values.json) {
      await writeFileAtomic(values.json, JSON.stringify({ model: 'sd15', size, dtype, adapter: rt.adapterName, warmup, stages, peakBytes, date: new Date().toISOString() }, null, 2));
      process.stderr.write(`wrote ${values.json}\n`);
    }
    latents.dispose();
    text.dispose();
    sd.dispose();
    return 0;
  } finally {
    rt.destroy();
  }
}
