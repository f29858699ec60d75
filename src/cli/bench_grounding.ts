// `grounded-sd bench grounding`: GPU time per layer of the grounding module, forward and
// backward, at the real widths (batch 1), from timestamp queries, plus the wall time of
// one full training step (forward, BCE, backward, Adam). Dispatches are grouped by the
// profiler scope they ran in: one per official module (bench/grounding.ts).
import { UsageError } from '../gpu/errors.js';
import { parseArgs } from 'node:util';
import { benchGrounding, type GroundingBenchReport } from '../bench/grounding.js';
import { Runtime } from '../gpu/runtime.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { Command } from './main.js';

const USAGE = 'grounded-sd bench grounding [--json FILE] [--classes N] [--reps N] [--config sd1|tiny]';

function table(r: GroundingBenchReport): string {
  const lines = [`grounding module (${r.config}, batch 1, ${r.classes} classes, ${r.outSize}x${r.outSize} masks) on ${r.device}`];
  lines.push(`${'layer'.padEnd(52)} ${'forward ms'.padStart(11)} ${'backward ms'.padStart(12)} ${'dispatches'.padStart(11)}`);
  for (const row of r.layers) {
    lines.push(`${row.layer.padEnd(52)} ${row.forwardMs.toFixed(3).padStart(11)} ${row.backwardMs.toFixed(3).padStart(12)} ${String(row.dispatches).padStart(11)}`);
  }
  lines.push(`${'total (GPU)'.padEnd(52)} ${r.forwardMs.toFixed(3).padStart(11)} ${r.backwardMs.toFixed(3).padStart(12)}`);
  lines.push(`loss and dlogits (GPU, BCE between the passes): ${r.lossMs.toFixed(3)} ms`);
  lines.push(`training step (wall, median of ${r.reps}): ${r.stepMs.toFixed(1)} ms`);
  return lines.join('\n');
}

export const benchGroundingCommand: Command = {
  summary: 'per-layer forward/backward GPU time of the grounding module and one training step',
  usage: `${USAGE}\n\n` + [
    '  --json FILE     the report as JSON',
    '  --classes N     classes (text-embedding rows) per image (default 2)',
    '  --reps N        timed training steps; the median is reported (default 3)',
    '  --config C      sd1 (real widths, default) or tiny',
  ].join('\n'),
  async run(argv) {
    let values;
    let classes: number;
    let reps: number;
    try {
      values = parseArgs({ args: argv, options: { json: { type: 'string' }, classes: { type: 'string' }, reps: { type: 'string' }, config: { type: 'string' } } }).values;
      classes = Number(values.classes ?? 2);
      reps = Number(values.reps ?? 3);
      if (!Number.isInteger(classes) || classes < 1) throw new UsageError(`--classes needs a positive integer, got '${values.classes}'`);
      if (!Number.isInteger(reps) || reps < 1) throw new UsageError(`--reps needs a positive integer, got '${values.reps}'`);
      if (values.config !== undefined && values.config !== 'sd1' && values.config !== 'tiny') throw new UsageError(`--config must be sd1 or tiny, got '${values.config}'`);
    } catch (e) {
      console.error(`grounded-sd bench grounding: ${(e as Error).message}\nusage: ${USAGE}`);
      return 2;
    }
    const rt = await Runtime.create();
    try {
      if (!rt.profiler) console.error('grounded-sd bench grounding: the adapter has no timestamp-query; per-layer times are unavailable, only the step time is measured');
      const report = await benchGrounding(rt, { config: (values.config ?? 'sd1') as 'sd1' | 'tiny', classes, reps, log: (m) => process.stderr.write(`${m}\n`) });
      console.log(table(report));
      if (values.json) await writeFileAtomic(values.json, `${JSON.stringify(report, null, 2)}\n`);
      return 0;
    } finally {
      rt.destroy();
    }
  },
};
