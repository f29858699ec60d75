// `grounded-sd parity DIR...`: runs golden fixture folders and prints, per output, the
// max absolute difference, the error relative to the output's max |value|, and
// PASS/FAIL against the manifest's tolerance. Exit status 1 on any FAIL or error.
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../io/atomic.js';
import { checkWritable } from '../io/writable.js';
import { fixtureDirs, NoHandlerError, runParity, type ParityReport } from '../pipeline/parity/index.js';
import type { Command } from './main.js';

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(2) : String(x);
}

export function formatReport(r: ParityReport): string {
  const w = Math.max(24, ...r.rows.map((x) => x.name.length));
  const lines = [`${r.dir}  (component ${r.component})`];
  lines.push(`  ${'output'.padEnd(w)}  ${'max_abs'.padStart(9)}  ${'rel'.padStart(9)}  ${'tol'.padStart(9)}  result`);
  for (const row of r.rows) {
    const res = row.error ? `FAIL (${row.error})` : row.pass ? 'PASS' : 'FAIL';
    const tol = row.metric === 'exact' ? 'exact' : `${row.metric === 'abs' ? 'abs ' : ''}${fmt(row.tol)}`;
    lines.push(`  ${row.name.padEnd(w)}  ${fmt(row.maxAbs).padStart(9)}  ${fmt(row.rel).padStart(9)}  ${tol.padStart(9)}  ${res}`);
  }
  const failed = r.rows.filter((x) => !x.pass).length;
  lines.push(`  ${r.rows.length - failed} passed, ${failed} failed`);
  return lines.join('\n');
}

export const parityCommand: Command = {
  summary: 'check the engine against golden fixture folders (manifest.json + safetensors)',
  usage: 'grounded-sd parity DIR [DIR...] [--json FILE]\n\nDIR is a fixture folder (manifest.json + safetensors) or a folder of them, searched at any depth.',
  async run(argv) {
    const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'string' } } });
    if (positionals.length === 0) {
      console.error('grounded-sd parity: give at least one fixture folder');
      return 2;
    }
    // The report file must be creatable before the fixtures run, not after.
    if (values.json) checkWritable([values.json], '--json');
    let ok = true;
    const reports: ParityReport[] = [];
    // A parent folder runs every fixture below it, as the test suite does.
    const dirs: string[] = [];
    for (const p of positionals) {
      const found = fixtureDirs(p);
      if (found.length === 0) {
        console.log(`${p}: FAIL (no manifest.json at or below it: not a fixture folder)`);
        ok = false;
      }
      dirs.push(...found);
    }
    for (const dir of dirs) {
      try {
        const r = await runParity(dir, (m) => process.stderr.write(`${m}\n`));
        reports.push(r);
        console.log(formatReport(r));
        ok &&= r.pass;
      } catch (e) {
        ok = false;
        console.log(e instanceof NoHandlerError ? `FAIL ${e.message}` : `${dir}: FAIL (could not run: ${(e as Error).message})`);
      }
    }
    if (values.json) await writeFileAtomic(values.json, JSON.stringify(reports, null, 2));
    return ok ? 0 : 1;
  },
};
