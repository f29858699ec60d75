// Parity for the `grounded` component (golden/grounded_tiny/README.md): the whole chain from
// the fixture's token ids and x_T, through the library's own pipeline pieces (text
// encoder, grounded/denoise.ts with taps and the DAAM sink, the VAE, feature grouping,
// class embeddings, the grounding module in both BatchNorm modes, DAAM aggregation and
// word maps), comparing every io tensor by its manifest `compare` rule:
// - `exact`: equal (ids, timesteps, DAAM merge indices); the stored ids are also checked
//   against our tokenizer on the manifest's texts;
// - `rel_max_abs`: max|out - ref| / max|ref| <= tolerance.max;
// - `mask`: pixels whose reference `values` lie within the band of the threshold may differ;
//   encoded as an exact check after giving those pixels the reference value, so the check
//   fails iff a pixel outside the band differs.
// Weights live behind one prefix per model in weights.safetensors; configs, names, shapes,
// words and layers all come from the manifest.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { Runtime } from '../../gpu/runtime.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { CLIPTokenizer } from '../../io/tokenizer.js';
import { mappedSource } from '../../io/weight_source.js';
import { CLIPTextModel } from '../../models/clip.js';
import { GROUPS, type Group, type GroundingConfig } from '../../models/grounding/config.js';
import { groundingForward } from '../../models/grounding/forward.js';
import { Segmodule } from '../../models/grounding/segmodule.js';
import { checkModelDtype } from '../../models/precision.js';
import { createScheduler, schedulerNameForClass } from '../../models/schedulers/index.js';
import { clipConfigFrom, StableDiffusion } from '../../models/sd.js';
import { UNet2DConditionModel, type UNet2DConditionConfig } from '../../models/unet/index.js';
import { AutoencoderKL } from '../../models/vae/vae.js';
import type { AutoencoderKLConfig } from '../../models/vae/config.js';
import { linearCombination } from '../../nn/combine.js';
import { concat } from '../../nn/layout.js';
import { loadWeights } from '../../nn/module.js';
import { scopeAsync } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { DaamAccumulator, daamLayers, daamWordMaps } from '../daam.js';
import { denoise } from '../grounded/denoise.js';
import { featureLayout, groupFeatures } from '../grounded/features.js';
import { tokenStrings, wordMergeIndices } from '../grounded/prompt.js';
import { classEmbeddingsFromStates } from '../grounded/text.js';
import type { ParityCheck, ParityHandler, ParityOptions } from './types.js';

interface IoSpec {
  shape: number[]; dtype: string; kind: string; compare: string;
  values?: string; threshold?: number; band_relative_to_max_abs?: number; band_absolute?: number;
}
interface ModelEntry { prefix: string; config?: Record<string, unknown>; config_args?: Record<string, unknown> }
interface Manifest {
  tolerance: { max: number };
  prompt: string; negative_prompt: string; class_queries: string[];
  image_size: [number, number]; num_inference_steps: number; guidance_scale: number;
  tokenizer?: { files?: string };
  scheduler: { class: string; config: Record<string, unknown> };
  models: Record<'text_encoder' | 'unet' | 'vae' | 'segmodule', ModelEntry>;
  features: Record<Group, string[]>;
  daam: { layers: Array<{ module: string; io_sum: string }>; words: Array<{ index: number; word: string }> };
  io: { tensors: Record<string, IoSpec> };
}

/**
 * The fixtures' mask rule as an exact comparison: a pixel whose reference value lies within
 * the band of the threshold (`band_absolute`, or `band_relative_to_max_abs` times
 * max|values|) takes the reference mask's value, so only pixels outside the band count.
 */
export function maskBandActual(
  actual: ArrayLike<number>, expected: ArrayLike<number>, values: ArrayLike<number>,
  rule: { threshold?: number; band_absolute?: number; band_relative_to_max_abs?: number },
): number[] {
  let maxAbs = 0;
  for (let i = 0; i < values.length; i++) maxAbs = Math.max(maxAbs, Math.abs(values[i]));
  const band = rule.band_absolute ?? (rule.band_relative_to_max_abs ?? 0) * maxAbs;
  const th = rule.threshold ?? 0;
  return Array.from(actual, (a, i) => (Math.abs(values[i] - th) <= band ? expected[i] : a));
}

/** The timestep whose UNet call the official code records (openaimodel.py:892). */
const OFFICIAL_FEATURE_TIMESTEP = 1;

/** The tokenizer folder the manifest names ("../tokenizer/vocab.json and ..."), else ../tokenizer. */
function tokenizerDir(dir: string, m: Manifest): string {
  const named = /(\S+)vocab\.json/.exec(m.tokenizer?.files ?? '')?.[1];
  const tdir = resolve(dir, named ? dirname(`${named}vocab.json`) : '../tokenizer');
  if (!existsSync(join(tdir, 'vocab.json'))) throw new InputError(`${dir}: the tokenizer folder ${tdir} (vocab.json, merges.txt) the manifest refers to is missing`);
  return tdir;
}

export async function runGroundedParity(dir: string, raw: Record<string, unknown>, log: (msg: string) => void, opts: ParityOptions = {}): Promise<ParityCheck[]> {
  const m = raw as unknown as Manifest;
  const tol = Number(m.tolerance?.max ?? 1e-4);
  const io = await SafetensorsFile.open(join(dir, 'io.safetensors'));
  const wfile = await SafetensorsFile.open(join(dir, 'weights.safetensors'));
  const rt = await Runtime.create();
  const checks: ParityCheck[] = [];
  const spec = (name: string): IoSpec => {
    const s = m.io.tensors[name];
    if (!s) throw new InputError(`${dir}/manifest.json: io.tensors has no entry '${name}'`);
    return s;
  };
  /** One check by the tensor's compare rule. */
  const check = async (name: string, actual: ArrayLike<number>) => {
    const s = spec(name);
    if (s.compare === 'exact') {
      const expected = s.dtype === 'I64' ? Array.from(await io.readI64(name), Number) : await io.readF32(name);
      checks.push({ name, actual, expected, metric: 'exact', tol: 0 });
    } else if (s.compare === 'rel_max_abs') {
      checks.push({ name, actual, expected: await io.readF32(name), metric: 'rel_max', tol });
    } else if (s.compare === 'mask') {
      const expected = await io.readF32(name);
      checks.push({ name, actual: maskBandActual(actual, expected, await io.readF32(s.values ?? ''), s), expected, metric: 'exact', tol: 0 });
    } else {
      throw new InputError(`${dir}/manifest.json: '${name}' has compare '${s.compare}' (known: exact, rel_max_abs, mask)`);
    }
  };
  const ids = async (name: string) => Array.from(await io.readI64(name), Number);
  const source = (key: keyof Manifest['models']) => {
    const prefix = m.models[key].prefix;
    return mappedSource([wfile], (n) => (n.startsWith(prefix) ? n.slice(prefix.length) : null), `${wfile.path} (${prefix}*)`);
  };
  const config = (key: keyof Manifest['models']) => m.models[key].config ?? m.models[key].config_args ?? {};

  try {
    // The SD models run in `dtype`; the grounding module stays f32 (models/grounding/forward.ts).
    const dtype = opts.dtype ?? 'f32';
    checkModelDtype(rt, dtype, 'parity grounded');
    const tokenizer = await CLIPTokenizer.fromFolder(tokenizerDir(dir, m));
    const textEncoder = new CLIPTextModel(clipConfigFrom(config('text_encoder')));
    await loadWeights(rt, textEncoder, source('text_encoder'), { dtype, ignore: (n) => n.endsWith('position_ids') });
    const unet = new UNet2DConditionModel(config('unet') as unknown as UNet2DConditionConfig);
    await loadWeights(rt, unet, source('unet'), { dtype });
    const vae = new AutoencoderKL(config('vae') as Partial<AutoencoderKLConfig>);
    await loadWeights(rt, vae, source('vae'), { dtype });
    const seg = new Segmodule(config('segmodule') as unknown as GroundingConfig);
    const sd = new StableDiffusion(rt, tokenizer, textEncoder, unet, vae, m.scheduler.config);
    const [H, W] = m.image_size;

    await scopeAsync(async () => {
      // 1. Text: each prompt alone (batch 1), as the fixture encodes them.
      const encode = (row: number[]) => textEncoder.forward(rt, [row]).lastHiddenState;
      const texts: Tensor[] = [];
      for (const [key, text] of [['uncond', m.negative_prompt], ['cond', m.prompt]] as const) {
        const row = await ids(`input.ids.${key}`);
        await check(`input.ids.${key}`, tokenizer.encodePadded(text));
        const states = encode(row);
        await check(`text.${key}`, await states.toArray());
        texts.push(states);
      }

      // 2-3. Scheduler and the CFG loop, with the feature taps and the DAAM sink.
      const scheduler = createScheduler(schedulerNameForClass(m.scheduler.class), m.scheduler.config);
      scheduler.setTimesteps(m.num_inference_steps);
      const timesteps = [...scheduler.timesteps];
      await check('timesteps', timesteps);
      const featureStep = timesteps.indexOf(OFFICIAL_FEATURE_TIMESTEP);
      if (featureStep < 0) throw new InputError(`${dir}: the schedule ${timesteps.join(', ')} has no timestep ${OFFICIAL_FEATURE_TIMESTEP} (the feature call)`);
      const xT = await io.toTensor(rt, 'input.latents_T');
      const [, , lh, lw] = xT.shape;
      const layout = featureLayout(unet, lh, lw);
      const daam = new DaamAccumulator(daamLayers(unet, lh, lw), 1);
      const noisePred: number[] = [];
      const guided: number[] = [];
      const latents: number[] = [];
      const start = linearCombination([[scheduler.initNoiseSigma, xT]]);
      latents.push(...(await start.toArray()));
      log(`grounded: ${timesteps.length} steps (${timesteps.join(', ')}), features at step ${featureStep}, ${layout.length} taps, DAAM on ${daam.layerList.length} layers`);
      try {
        const run = await denoise(sd, {
          text: concat(texts, 0), latents: start, scheduler, guidanceScale: m.guidance_scale, featureStep, taps: layout.map((t) => t.name), sink: daam,
          onStep: async (st) => {
            noisePred.push(...(await st.noisePred.toArray()));
            guided.push(...(await st.guided.toArray()));
            latents.push(...(await st.latents.toArray()));
          },
        });
        await check('unet.noise_pred', noisePred);
        await check('noise_pred_guided', guided);
        await check('latents', latents);

        // 5. Image.
        const rawImage = vae.decode(rt, linearCombination([[1 / vae.config.scaling_factor, run.latents]]));
        await check('image_raw', await rawImage.toArray());
        await check('image', await linearCombination([[0.5, rawImage]], 0.5, [0, 1]).toArray());

        // 4. Features, by group in the manifest's order.
        const features = groupFeatures(layout, run.taps, 0, 1);
        for (const g of GROUPS) {
          for (const [i, name] of (m.features[g] ?? []).entries()) {
            const t = features[g][i];
            await check(name, t ? await t.toArray() : []);
          }
        }

        // 6. Class embeddings.
        const queryStates: Tensor[] = [];
        const counts: number[] = [];
        for (const [j, query] of m.class_queries.entries()) {
          const row = await ids(`input.ids.class_query.${j}`);
          await check(`input.ids.class_query.${j}`, tokenizer.encodePadded(query));
          const states = encode(row);
          await check(`class_query.${j}.last_hidden_state`, await states.toArray());
          queryStates.push(states);
          counts.push(tokenStrings(tokenizer, query).length - 4);
        }
        const textEmbedding = classEmbeddingsFromStates(concat(queryStates, 0), counts);
        await check('text_embedding', await textEmbedding.toArray());

        // 7. Grounding module, each mode from the stored weights and buffers.
        const modes = Object.keys(m.io.tensors).map((n) => /^seg\.(\w+)\.logits$/.exec(n)?.[1]).filter((x): x is string => x !== undefined);
        for (const mode of modes) {
          if (mode !== 'train' && mode !== 'eval') throw new InputError(`${dir}: unknown grounding mode '${mode}' (train, eval)`);
          await loadWeights(rt, seg, source('segmodule'));
          const out = groundingForward(seg, [{ features, textEmbedding }], { training: mode === 'train', outSize: H, intermediates: true });
          const inter = out.intermediates?.[0];
          const logits = await out.logits[0].toArray();
          await check(`seg.${mode}.logits`, logits);
          await check(`seg.${mode}.masks`, Array.from(logits, (x) => (x > 0 ? 1 : 0)));
          await check(`seg.${mode}.image_feature`, (await inter?.get('highest_feature_mix_conv')?.toArray()) ?? []);
          await check(`seg.${mode}.mask_embedding`, (await inter?.get('mlp')?.toArray()) ?? []);
          log(`grounded: grounding module (${mode}) done`);
        }

        // 8. DAAM.
        const promptTokens = tokenStrings(tokenizer, m.prompt.toLowerCase());
        const nKeep = Math.min(promptTokens.length, textEncoder.config.max_position_embeddings - 2) + 2;
        for (const l of m.daam.layers) {
          const sum = daam.wants(l.module) ? await daam.layerSum(l.module, 0, nKeep).toArray() : [];
          await check(l.io_sum, sum);
        }
        const tokenMaps = await daam.tokenMaps(0, nKeep, lh, lw).toArray();
        await check('daam.token_maps', tokenMaps);
        const words = m.daam.words.map((w) => ({ ...w, mergeIndices: wordMergeIndices(promptTokens, tokenStrings(tokenizer, w.word.toLowerCase())) }));
        for (const w of words) await check(`daam.word.${w.index}.merge_idxs`, w.mergeIndices);
        const maps = await daamWordMaps(rt, tokenMaps, [lh, lw], [H, W], words);
        for (const [k, w] of words.entries()) {
          await check(`daam.word.${w.index}.latent`, maps[k].latent);
          await check(`daam.word.${w.index}.image`, maps[k].heatmap);
          await check(`daam.word.${w.index}.mask`, maps[k].mask);
        }
        run.latents.dispose();
        for (const t of run.taps.values()) t.dispose();
      } finally {
        daam.dispose();
      }
    });
    return checks;
  } finally {
    rt.destroy();
    await io.close();
    await wfile.close();
  }
}

export const handler: ParityHandler = { run: runGroundedParity };
