// Parity for diffusers' AutoencoderKL fixtures: every manifest case, decode
// (`<case>.latent` -> `<case>.image`) or encode (`<case>.image` -> `<case>.moments`,
// `.mean`, `.logvar`, `.std`), plus every hook `<case>.hook.<module>` io.safetensors
// stores. Config, names, shapes and tolerance come from the manifest and the io file.
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { Runtime } from '../../gpu/runtime.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { safetensorsSource } from '../../io/weight_source.js';
import { AutoencoderKL, type VaeRunOptions } from '../../models/vae/vae.js';
import type { AutoencoderKLConfig } from '../../models/vae/config.js';
import { loadWeights } from '../../nn/module.js';
import { scopeAsync } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { manifestConfig } from './manifest_config.js';
import type { ParityCheck, ParityHandler, ParityOptions } from './types.js';
import { checkModelDtype } from '../../models/precision.js';

interface VaeCase {
  name: string;
  kind: string;
}

/** The handler's work, with the model's internal test options (forced row bands). */
export async function runVaeParity(
  dir: string, manifest: Record<string, unknown>, log: (msg: string) => void, opts: Omit<VaeRunOptions, 'taps'> = {}, parity: ParityOptions = {},
): Promise<ParityCheck[]> {
  const tol = Number((manifest.tolerance as { max?: number } | undefined)?.max ?? 1e-4);
  const cases = (manifest.cases ?? []) as VaeCase[];
  const config = manifestConfig(dir, manifest) as Partial<AutoencoderKLConfig>;
  const io = await SafetensorsFile.open(join(dir, 'io.safetensors'));
  const weights = await SafetensorsFile.open(join(dir, 'weights.safetensors'));
  const rt = await Runtime.create();
  try {
    const dtype = parity.dtype ?? 'f32';
    checkModelDtype(rt, dtype, 'parity vae');
    const model = new AutoencoderKL(config);
    await loadWeights(rt, model, safetensorsSource(weights), { dtype });
    const checks: ParityCheck[] = [];
    for (const c of cases) {
      const hookPrefix = `${c.name}.hook.`;
      const taps = [...io.tensors.keys()].filter((n) => n.startsWith(hookPrefix)).map((n) => n.slice(hookPrefix.length));
      await scopeAsync(async () => {
        const outputs = new Map<string, Tensor>();
        if (c.kind === 'decode') {
          const latent = await io.toTensor(rt, `${c.name}.latent`);
          log(`vae ${c.name}: decode [${latent.shape}]${taps.length ? `, taps ${taps.join(', ')}` : ''}`);
          const out = model.decodeWithTaps(rt, latent, { ...opts, taps });
          outputs.set('image', out.image);
          for (const [k, t] of out.taps) outputs.set(`hook.${k}`, t);
        } else if (c.kind === 'encode') {
          const image = await io.toTensor(rt, `${c.name}.image`);
          log(`vae ${c.name}: encode [${image.shape}]${taps.length ? `, taps ${taps.join(', ')}` : ''}`);
          const out = model.encode(rt, image, { ...opts, taps });
          for (const k of ['moments', 'mean', 'logvar', 'std'] as const) outputs.set(k, out[k]);
          for (const [k, t] of out.taps) outputs.set(`hook.${k}`, t);
        } else {
          throw new InputError(`${dir}: case '${c.name}' has kind '${c.kind}' (vae cases are 'decode' or 'encode')`);
        }
        for (const [suffix, t] of outputs) {
          const name = `${c.name}.${suffix}`;
          if (io.tensors.has(name)) checks.push({ name, actual: await t.toArray(), expected: await io.readF32(name), metric: 'rel_max', tol });
        }
      });
    }
    return checks;
  } finally {
    rt.destroy();
    await io.close();
    await weights.close();
  }
}

export const handler: ParityHandler = {
  run: (dir, manifest, log, opts) => runVaeParity(dir, manifest, log, {}, opts),
};
