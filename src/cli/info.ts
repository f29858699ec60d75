// `grounded-sd info`: the adapter, its limits and features as JSON, the kernel variant
// each op family runs on it (gpu/variants.ts), and whether it offers Dawn's experimental
// subgroup matrices (probed on a separate instance; no kernel uses them yet).
import { parseArgs } from 'node:util';
import { acquireGpu, probeSubgroupMatrix, type GpuContext } from '../gpu/device.js';
import { GpuError } from '../gpu/errors.js';
import { choiceOption } from './args.js';
import type { Command } from './main.js';

/** Dawn's backend names (its `backend=` instance toggle). */
const BACKENDS = ['vulkan', 'metal', 'd3d12', 'd3d11', 'opengl', 'opengles', 'null'] as const;

export const infoCommand: Command = {
  summary: 'print the WebGPU adapter, its limits, features and kernel variants as JSON',
  usage: `grounded-sd info [--backend ${BACKENDS.join('|')}] [--adapter auto|hardware|software|NAME]`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: { backend: { type: 'string' }, adapter: { type: 'string' } },
    });
    const backend = choiceOption('backend', values.backend, BACKENDS);
    let gpu: GpuContext;
    try {
      gpu = await acquireGpu({ backend, adapter: values.adapter });
    } catch (e) {
      // A named adapter or a forced backend that matches nothing is the request's fault,
      // not a missing driver: say which option found nothing.
      const asked = [values.adapter && !['auto', 'hardware', 'software'].includes(values.adapter) ? `--adapter '${values.adapter}'` : '', backend ? `--backend ${backend}` : '']
        .filter(Boolean).join(' with ');
      if (e instanceof GpuError && asked) {
        throw new GpuError(`no WebGPU adapter matches ${asked}; run \`grounded-sd info\` without it to see the default adapter and its name`);
      }
      throw e;
    }
    let subgroupMatrix;
    try {
      subgroupMatrix = await probeSubgroupMatrix({ backend, adapter: values.adapter });
    } finally {
      gpu.release();
    }
    const report = {
      ...gpu.report,
      deviceFeatures: [...gpu.device.features].sort(),
      shaderF16: gpu.hasF16,
      timestampQuery: gpu.hasTimestamps,
      subgroups: gpu.hasSubgroups,
      // What each op family runs here; GROUNDED_SD_VARIANTS=family=variant,... overrides.
      kernelVariants: gpu.variants.toJSON(),
      subgroupMatrix: {
        ...subgroupMatrix,
        used: false,
        note: 'detected only: no subgroup-matrix kernel yet (none could be tested; the software adapter lacks the feature)',
      },
    };
    console.log(JSON.stringify(report, null, 2));
    return 0;
  },
};
