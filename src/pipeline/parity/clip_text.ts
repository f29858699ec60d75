// Parity for transformers' CLIPTextModel fixtures: input_ids -> last_hidden_state,
// pooler_output and every hidden_states.i the io file stores.
import { join } from 'node:path';
import { Runtime } from '../../gpu/runtime.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { CLIPTextModel, type CLIPTextConfig } from '../../models/clip.js';
import { loadWeights } from '../../nn/module.js';
import { safetensorsSource } from '../../io/weight_source.js';
import { manifestConfig } from './manifest_config.js';
import type { ParityCheck, ParityHandler } from './types.js';
import { checkModelDtype } from '../../models/precision.js';

export const handler: ParityHandler = {
  async run(dir, manifest, log, opts = {}) {
    const tol = Number((manifest.tolerance as { max?: number })?.max ?? 1e-4);
    const config = manifestConfig(dir, manifest) as unknown as CLIPTextConfig;
    const io = await SafetensorsFile.open(join(dir, 'io.safetensors'));
    const weights = await SafetensorsFile.open(join(dir, 'weights.safetensors'));
    const rt = await Runtime.create();
    try {
      const dtype = opts.dtype ?? 'f32';
      checkModelDtype(rt, dtype, 'parity clip_text');
      const model = new CLIPTextModel(config);
      await loadWeights(rt, model, safetensorsSource(weights), { dtype, ignore: (n) => n.endsWith('position_ids') });
      const idsInfo = io.info('input_ids');
      const raw = await io.readI64('input_ids');
      const [B, L] = idsInfo.shape;
      const ids = Array.from({ length: B }, (_, b) => Array.from({ length: L }, (_, i) => Number(raw[b * L + i])));
      log(`clip_text: ${B}x${L} ids, ${config.num_hidden_layers} layers, ${dtype}`);
      const out = model.forward(rt, ids, { hiddenStates: true });
      const checks: ParityCheck[] = [];
      const add = async (name: string, t: { toArray(): Promise<Float32Array> } | undefined) => {
        if (!io.tensors.has(name) || !t) return;
        checks.push({ name, actual: await t.toArray(), expected: await io.readF32(name), metric: 'rel_max', tol });
      };
      await add('last_hidden_state', out.lastHiddenState);
      await add('pooler_output', out.pooled);
      for (let i = 0; i < (out.hiddenStates?.length ?? 0); i++) await add(`hidden_states.${i}`, out.hiddenStates?.[i]);
      return checks;
    } finally {
      rt.destroy();
      await io.close();
      await weights.close();
    }
  },
};
