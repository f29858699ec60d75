// Parity for diffusers UNet2DConditionModel fixtures: every manifest case (sample,
// timesteps from the io tensor the case names, int or float, encoder_hidden_states) ->
// `<case>.noise_pred` and every `<case>.hook.<name>` the io file stores, as rel_max
// checks at the manifest's tolerance.
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { Runtime } from '../../gpu/runtime.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { safetensorsSource } from '../../io/weight_source.js';
import { UNet2DConditionModel, type UNet2DConditionConfig } from '../../models/unet/index.js';
import { loadWeights } from '../../nn/module.js';
import { manifestConfig } from './manifest_config.js';
import type { ParityCheck, ParityHandler } from './types.js';
import { checkModelDtype } from '../../models/precision.js';

interface UNetCase {
  name: string;
  /** Name of the io tensor holding the timesteps (int64 or float32), or the values. */
  timesteps?: string | number[];
}

async function caseTimesteps(io: SafetensorsFile, c: UNetCase): Promise<number[]> {
  if (Array.isArray(c.timesteps)) return c.timesteps;
  const name = [c.timesteps, `${c.name}.timesteps`, 'timesteps'].find((n): n is string => typeof n === 'string' && io.tensors.has(n));
  if (!name) throw new InputError(`${io.path}: no timesteps tensor for case ${c.name} (looked for ${String(c.timesteps)}, ${c.name}.timesteps, timesteps)`);
  return Array.from(await io.readF32(name));
}

export const handler: ParityHandler = {
  async run(dir, manifest, log, opts = {}) {
    const tol = Number((manifest.tolerance as { max?: number } | undefined)?.max ?? 1e-4);
    const cases = manifest.cases as UNetCase[] | undefined;
    if (!Array.isArray(cases) || cases.length === 0) throw new InputError(`${dir}/manifest.json has no 'cases' list`);
    const config = manifestConfig(dir, manifest) as unknown as UNet2DConditionConfig;
    const io = await SafetensorsFile.open(join(dir, 'io.safetensors'));
    const weights = await SafetensorsFile.open(join(dir, 'weights.safetensors'));
    const rt = await Runtime.create();
    try {
      const dtype = opts.dtype ?? 'f32';
      checkModelDtype(rt, dtype, 'parity unet');
      const model = new UNet2DConditionModel(config);
      await loadWeights(rt, model, safetensorsSource(weights), { dtype });
      const known = new Set(model.tapNames());
      const checks: ParityCheck[] = [];
      for (const c of cases) {
        const prefix = `${c.name}.hook.`;
        const hooks = [...io.tensors.keys()].filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
        const ehsName = io.tensors.has(`${c.name}.encoder_hidden_states`) ? `${c.name}.encoder_hidden_states` : 'encoder_hidden_states';
        const timesteps = await caseTimesteps(io, c);
        const sample = await io.toTensor(rt, `${c.name}.sample`);
        const ehs = await io.toTensor(rt, ehsName);
        log(`unet: case ${c.name} sample [${sample.shape.join(',')}] timesteps [${timesteps.join(', ')}], ${hooks.length} hooks, ${dtype}`);
        const out = model.forward(rt, sample, timesteps, ehs, { taps: hooks.filter((h) => known.has(h)) });
        const push = async (name: string, actual: ArrayLike<number>) => {
          checks.push({ name, actual, expected: await io.readF32(name), metric: 'rel_max', tol });
        };
        await push(`${c.name}.noise_pred`, await out.sample.toArray());
        for (const h of hooks) {
          const t = out.taps.get(h);
          // A stored hook the model has no tap for fails as a length mismatch.
          await push(`${prefix}${h}`, t ? await t.toArray() : []);
        }
        for (const t of [sample, ehs, out.sample, ...out.taps.values()]) t.dispose();
      }
      return checks;
    } finally {
      rt.destroy();
      await io.close();
      await weights.close();
    }
  },
};
