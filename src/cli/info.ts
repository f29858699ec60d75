// `grounded-sd info`: the adapter, its limits and features as JSON.
import { parseArgs } from 'node:util';
import { acquireGpu } from '../gpu/device.js';
import type { Command } from './main.js';

export const infoCommand: Command = {
  summary: 'print the WebGPU adapter, its limits and features as JSON',
  usage: 'grounded-sd info [--backend NAME] [--adapter auto|hardware|software|NAME]',
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: { backend: { type: 'string' }, adapter: { type: 'string' } },
    });
    const gpu = await acquireGpu({ backend: values.backend, adapter: values.adapter });
    const report = {
      ...gpu.report,
      deviceFeatures: [...gpu.device.features].sort(),
      shaderF16: gpu.hasF16,
      timestampQuery: gpu.hasTimestamps,
      subgroups: gpu.hasSubgroups,
    };
    console.log(JSON.stringify(report, null, 2));
    gpu.release();
    return 0;
  },
};
