// `grounded-sd bench kernels|model|grounding|layers`. kernels: every kernel benchmark case (src/bench/kernels) against
// the adapter's roofline (probed in the same run) and tfjs-backend-webgpu on the same
// adapter (a dev dependency: without it the table has no tfjs columns). Progress goes to
// stderr, the table and the target summary to stdout.
import { UsageError } from '../gpu/errors.js';
import { parseArgs } from 'node:util';
import {
  evaluateTargets, formatTable, formatTargets, metaPath, writeJsonAtomic, writePngAtomic,
} from '../bench/report.js';
import { runBench } from '../bench/run.js';
import { debugFlags } from '../gpu/debug.js';
import { Runtime } from '../gpu/runtime.js';
import { benchGroundingCommand } from './bench_grounding.js';
import { benchLayersCommand } from './bench_layers.js';
import { benchModel, benchModelUsage } from './bench_model.js';
import type { Command } from './main.js';

const USAGE = [
  'grounded-sd bench kernels [--json FILE] [--filter SUBSTR] [--reps N] [--trials N] [--no-peer] [--png FILE]',
  '       grounded-sd bench model --model sd15 --size S [--json FILE] [--warmup N] [--steps-only]',
  '       grounded-sd bench grounding [--json FILE] [--config sd1|tiny] [--classes N] [--reps N]',
  '       grounded-sd bench layers --model sd15|tiny|PATH --size S [--backward] [--json FILE] [--markdown FILE] [--png FILE]',
].join('\n');

function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} needs a positive integer, got '${v}'`);
  return n;
}

export const benchCommand: Command = {
  summary: 'benchmark kernels (vs roofline and tfjs), the SD 1.5 model stages, the grounding module, or every layer of every model',
  usage: `${USAGE}\n\n` + [
    '  --json FILE      rows as a JSON array; adapter and probe in FILE.meta.json',
    '  --filter SUBSTR  only cases whose "family op shape" contains SUBSTR',
    '  --reps N         runs per timed trial (default: about 250 ms per trial)',
    '  --trials N       timed trials per case; median and min are over these (default 5)',
    '  --no-peer        skip tfjs-backend-webgpu',
    '  --png FILE       bar chart of the speedup over tfjs per row',
  ].join('\n'),
  async run(argv) {
    const help = argv[1] === '--help' || argv[1] === '-h';
    if (argv[0] === 'grounding') {
      if (!help) return benchGroundingCommand.run(argv.slice(1));
      console.log(`${benchGroundingCommand.summary}\n\nusage: ${benchGroundingCommand.usage}`);
      return 0;
    }
    if (argv[0] === 'layers') {
      if (!help) return benchLayersCommand.run(argv.slice(1));
      console.log(`${benchLayersCommand.summary}\n\nusage: ${benchLayersCommand.usage}`);
      return 0;
    }
    if (argv[0] === 'model') {
      if (!help) return benchModel(argv.slice(1));
      console.log(`usage: ${benchModelUsage}`);
      return 0;
    }
    if (argv[0] === 'kernels' && help) {
      console.log(`${benchCommand.summary}\n\nusage: ${benchCommand.usage}`);
      return 0;
    }
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
          json: { type: 'string' },
          filter: { type: 'string' },
          reps: { type: 'string' },
          trials: { type: 'string' },
          'no-peer': { type: 'boolean' },
          png: { type: 'string' },
        },
      });
    } catch (e) {
      console.error(`grounded-sd bench: ${(e as Error).message}\nusage: ${USAGE}`);
      return 2;
    }
    const { values, positionals } = parsed;
    if (positionals.length !== 1 || positionals[0] !== 'kernels') {
      console.error(`grounded-sd bench: expected the subcommand 'kernels'\nusage: ${USAGE}`);
      return 2;
    }
    let reps: number | undefined;
    let trials: number | undefined;
    try {
      reps = positiveInt('reps', values.reps);
      trials = positiveInt('trials', values.trials);
    } catch (e) {
      console.error(`grounded-sd bench: ${(e as Error).message}`);
      return 2;
    }

    if (debugFlags().validate) {
      process.stderr.write('warning: GROUNDED_SD_VALIDATE=1 puts every dispatch in an error scope; timings will be slow\n');
    }
    const rt = await Runtime.create();
    try {
      const result = await runBench(rt, {
        filter: values.filter,
        reps,
        trials,
        peer: !values['no-peer'],
        progress: (line) => process.stderr.write(`${line}\n`),
      });
      const { probe, rows } = result;
      const targets = evaluateTargets(rows, probe);
      console.log(`adapter: ${result.adapter}`);
      if (result.peer) console.log(`peer:    tfjs-backend-webgpu on ${result.peer.adapter}`);
      console.log(`probe:   ${probe.fmaGflops.toFixed(2)} GFLOP/s (vec4 FMA), ${probe.copyGbps.toFixed(2)} GB/s (copy, read+write); timing: ${result.timing}`);
      console.log('');
      console.log(rows.length ? formatTable(rows, { peer: result.peer !== null }) : `no cases matched${values.filter ? ` '${values.filter}'` : ''}`);
      console.log('');
      console.log(formatTargets(targets));
      if (values.json) {
        await writeJsonAtomic(values.json, rows);
        await writeJsonAtomic(metaPath(values.json), {
          adapter: rt.gpu.report,
          probe,
          timing: result.timing,
          peer: result.peer,
          targets,
          options: { filter: values.filter ?? null, reps: reps ?? null, trials: trials ?? 5 },
          date: new Date().toISOString(),
        });
        process.stderr.write(`wrote ${values.json} and ${metaPath(values.json)}\n`);
      }
      if (values.png) {
        await writePngAtomic(values.png, rows);
        process.stderr.write(`wrote ${values.png}\n`);
      }
      return rows.every((r) => r.valid) ? 0 : 1;
    } finally {
      rt.destroy();
    }
  },
};
