// Parity for the grounding module (official Segmodule) fixtures: every manifest case
// (train_n*/eval_n*) from the stored weights and buffers: logits, loss, intermediates,
// sigmas, effective weights, updated buffers, every gradient (full, or the .proj/.l2/.sum/
// .head/.tail summaries), the generator checks of regenerated inputs, and the Adam steps.
// Names, shapes, cases and tolerances all come from the manifest.
import { join } from 'node:path';
import { Runtime } from '../../gpu/runtime.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { safetensorsSource } from '../../io/weight_source.js';
import { GROUPS, type Group, type GroundingConfig } from '../../models/grounding/config.js';
import { groundingBackward } from '../../models/grounding/backward.js';
import { groundingForward } from '../../models/grounding/forward.js';
import { Segmodule } from '../../models/grounding/segmodule.js';
import { bceWithLogits, bceWithLogitsBackward } from '../../nn/loss.js';
import { loadWeights, namedParams } from '../../nn/module.js';
import { Adam } from '../../nn/optim.js';
import { streamKey, uniform24 } from '../../tensor/hash.js';
import { scopeAsync } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';
import type { ParityCheck, ParityHandler } from './types.js';

interface Case {
  name: string; mode: 'train' | 'eval'; prefix: string;
  inputs: { text_embedding: string; target: string };
  outputs: { seg_logits: string; loss: string };
  intermediates?: string[]; effective_weights?: string[]; sigmas?: string[]; state_after?: string[]; grads?: string[];
}
interface GenSpec { seed: number; tensors: Record<string, { stream: number; shape: number[]; scale: number }> }
interface Manifest {
  config: GroundingConfig;
  tolerance: { forward: number; gradients: number; adam_update: number; structurally_zero_abs: number };
  inputs: { features: Record<Group, string[]>; stored?: boolean; generator?: GenSpec };
  cases: Case[];
  gradient_summaries?: { proj_streams: Record<string, number> };
  adam?: Record<string, { lr: number; betas: [number, number]; eps: number; weight_decay: number; step: number; grads_from_case: string; params_after_prefix: string; noise_driven_params?: string[] }>;
  float64_vs_float32?: { structurally_zero?: Record<string, Record<string, unknown>> };
}

/** The fixtures' lowbias32-uniform generator: value = scale * (2 u - 1), exact in f32. */
export function hashUniform(seed: number, stream: number, n: number, scale = 1): Float32Array {
  const key = streamKey(seed, stream);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(scale * (2 * uniform24(key, i) - 1));
  return out;
}

export async function runGroundingParity(dir: string, manifestRaw: Record<string, unknown>, log: (msg: string) => void): Promise<ParityCheck[]> {
  const man = manifestRaw as unknown as Manifest;
  const tol = man.tolerance;
  const io = await SafetensorsFile.open(join(dir, 'io.safetensors'));
  const wfile = await SafetensorsFile.open(join(dir, 'weights.safetensors'));
  const rt = await Runtime.create();
  const checks: ParityCheck[] = [];
  const has = (n: string) => io.tensors.has(n);
  try {
    const model = new Segmodule(man.config);
    const reload = () => loadWeights(rt, model, safetensorsSource(wfile));
    const features = {} as Record<Group, Tensor[]>;
    const gen = man.inputs.generator;
    for (const g of GROUPS) {
      features[g] = [];
      for (const name of man.inputs.features[g]) {
        if (has(name)) {
          features[g].push(await io.toTensor(rt, name));
          continue;
        }
        const spec = gen?.tensors[name];
        if (!gen || !spec) throw new Error(`${dir}: input ${name} is neither stored nor generated`);
        const data = hashUniform(gen.seed, spec.stream, spec.shape.reduce((a, b) => a * b, 1), spec.scale);
        if (has(`check.${name}.head`)) {
          const head = await io.readF32(`check.${name}.head`);
          checks.push({ name: `check.${name}.head`, actual: data.subarray(0, head.length), expected: head, metric: 'exact', tol: 0 });
          let s = 0;
          for (const v of data) s += v;
          checks.push({ name: `check.${name}.sum`, actual: [s], expected: await io.readF32(`check.${name}.sum`), metric: 'rel_max', tol: 1e-6 });
        }
        features[g].push(Tensor.from(rt, data, spec.shape));
      }
    }
    const zeroGrads = (c: string) => new Set(Object.keys(man.float64_vs_float32?.structurally_zero?.[c] ?? {}));
    const gradsByCase = new Map<string, Map<string, Float32Array>>();

    for (const c of man.cases) {
      await reload();
      await scopeAsync(async () => {
        const t0 = Date.now();
        const text = await io.toTensor(rt, c.inputs.text_embedding);
        const target = await io.toTensor(rt, c.inputs.target);
        const training = c.mode === 'train';
        const wantGrads = (c.grads?.length ?? 0) > 0;
        const fwd = groundingForward(model, [{ features, textEmbedding: text }], { training, keepForBackward: wantGrads, intermediates: true });
        const logits = fwd.logits[0];
        const inter = fwd.intermediates![0];
        const [n, H, W] = logits.shape;
        const l2 = logits.reshape([n, H * W]);
        const t2 = target.reshape([n, H * W]);
        const loss = bceWithLogits(l2, t2);
        const fw = (name: string, actual: Float32Array, expected: Float32Array) => checks.push({ name, actual, expected, metric: 'rel_max', tol: tol.forward });
        fw(c.outputs.seg_logits, await logits.toArray(), await io.readF32(c.outputs.seg_logits));
        fw(c.outputs.loss, await loss.toArray(), await io.readF32(c.outputs.loss));
        for (const m of c.intermediates ?? []) fw(`${c.prefix}intermediate.${m}`, await inter.get(m)!.toArray(), await io.readF32(`${c.prefix}intermediate.${m}`));
        for (const m of [...(c.sigmas ?? []), ...(c.effective_weights ?? [])]) fw(`${c.prefix}${m}`, await inter.get(m)!.toArray(), await io.readF32(`${c.prefix}${m}`));
        const params = namedParams(model);
        for (const s of c.state_after ?? []) fw(`${c.prefix}${s}`, await params.get(s.slice('state_after.'.length))!.t.toArray(), await io.readF32(`${c.prefix}${s}`));
        log(`grounding ${c.name}: forward ${Date.now() - t0} ms`);
        if (!wantGrads) return;
        const dl = bceWithLogitsBackward(l2, t2, 1).reshape([n, H, W]);
        const grads = groundingBackward(model, fwd, [dl], { inputGrads: true });
        const gradOf = (name: string): Tensor => {
          if (name === 'grad.input.text_embedding') return grads.textEmbedding![0];
          if (name.startsWith('grad.param.')) return grads.params.get(name.slice('grad.param.'.length))!;
          const [, , , g, i] = name.split('.');
          return grads.features![0][g as Group][Number(i)];
        };
        const zero = zeroGrads(c.name);
        const caseGrads = new Map<string, Float32Array>();
        for (const gname of c.grads ?? []) {
          const actual = await gradOf(gname).toArray();
          caseGrads.set(gname, actual);
          const full = `${c.prefix}${gname}`;
          const isZero = zero.has(gname);
          if (has(full)) {
            checks.push({ name: full, actual, expected: await io.readF32(full), metric: isZero ? 'abs' : 'rel_max', tol: isZero ? tol.structurally_zero_abs : tol.gradients });
          }
          if (has(`${full}.head`)) await summaryChecks(full, gname, actual, isZero);
        }
        gradsByCase.set(c.name, caseGrads);
        log(`grounding ${c.name}: forward + backward ${Date.now() - t0} ms`);
      });
    }

    async function summaryChecks(full: string, gname: string, actual: Float32Array, isZero: boolean): Promise<void> {
      const N = actual.length;
      const head = await io.readF32(`${full}.head`);
      const tail = await io.readF32(`${full}.tail`);
      const l2ref = (await io.readF32(`${full}.l2`))[0];
      const zeroTol = tol.structurally_zero_abs;
      // Scalar summaries. A gradient within tolerance has an error vector E with
      // ||E|| <= tol * ||G|| (structurally zero: each |E_i| <= zeroTol, so ||E|| <= zeroTol sqrt(N)).
      // sum = <G, 1> and proj = <G, R> move by <E, 1> and <E, R>; rounding errors do not line
      // up with 1 or with the fixed random R, so both are bounded by the same ||E|| bound, with
      // no sqrt(N) Cauchy-Schwarz factor: a systematic interior error of a few percent fails.
      let l2 = 0;
      let sum = 0;
      let proj = 0;
      const stream = man.gradient_summaries?.proj_streams[gname];
      const R = stream !== undefined && gen ? hashUniform(gen.seed, stream, N) : null;
      for (let i = 0; i < N; i++) {
        l2 += actual[i] * actual[i];
        sum += actual[i];
        if (R) proj += actual[i] * R[i];
      }
      const bound = isZero ? zeroTol * Math.sqrt(N) : tol.gradients * l2ref;
      checks.push({ name: `${full}.head`, actual: actual.subarray(0, head.length), expected: head, metric: isZero ? 'abs' : 'rel_max', tol: isZero ? zeroTol : tol.gradients });
      checks.push({ name: `${full}.tail`, actual: actual.subarray(N - tail.length), expected: tail, metric: isZero ? 'abs' : 'rel_max', tol: isZero ? zeroTol : tol.gradients });
      checks.push({ name: `${full}.l2`, actual: [Math.sqrt(l2)], expected: [l2ref], metric: 'abs', tol: bound });
      checks.push({ name: `${full}.sum`, actual: [sum], expected: await io.readF32(`${full}.sum`), metric: 'abs', tol: bound });
      if (R) checks.push({ name: `${full}.proj`, actual: [proj], expected: await io.readF32(`${full}.proj`), metric: 'abs', tol: bound });
    }

    for (const [key, a] of Object.entries(man.adam ?? {})) {
      const g = gradsByCase.get(a.grads_from_case);
      if (!g) throw new Error(`${dir}: ${key} needs the gradients of case ${a.grads_from_case}`);
      await reload();
      await scopeAsync(async () => {
        const named = new Map<string, Tensor>();
        const gradTensors = new Map<string, Tensor>();
        const before = new Map<string, Float32Array>();
        for (const [name, p] of namedParams(model)) {
          if (p.kind !== 'param') continue;
          named.set(name, p.t);
          before.set(name, await p.t.toArray());
          // The update is checked on the stored gradients where they are stored in full:
          // Adam's first step is lr * g / (|g| + eps), so gradient elements within float
          // noise of zero (|g| ~ 1e-8) would compare our rounding instead of the optimiser.
          const stored = `${a.grads_from_case}.grad.param.${name}`;
          const grad = has(stored) ? await io.readF32(stored) : g.get(`grad.param.${name}`)!;
          gradTensors.set(name, Tensor.from(rt, grad, p.shape));
        }
        const opt = new Adam(named, { lr: a.lr, betas: a.betas, eps: a.eps, weightDecay: a.weight_decay });
        for (let s = 0; s < a.step; s++) opt.update(gradTensors);
        const noise = new Set(a.noise_driven_params ?? []);
        for (const [name, t] of named) {
          const after = await t.toArray();
          const b = before.get(name)!;
          const ref = await io.readF32(`${a.params_after_prefix}${name}`);
          const du = after.map((x, i) => x - b[i]);
          const dref = ref.map((x, i) => x - b[i]);
          const nm = `${a.params_after_prefix}${name}`;
          checks.push(noise.has(name)
            ? { name: nm, actual: du, expected: dref, metric: 'abs', tol: a.lr * (1 + 1e-3) }
            : { name: nm, actual: du, expected: dref, metric: 'rel_max', tol: tol.adam_update });
        }
        opt.dispose();
      });
    }
    return checks;
  } finally {
    rt.destroy();
    await io.close();
    await wfile.close();
  }
}

export const handler: ParityHandler = { run: runGroundingParity };
