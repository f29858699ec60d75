// Shared by the golden parity test files: the fixture folders with their manifests, and
// one fixture run through the runner `grounded-sd parity` uses.
import { expect } from 'vitest';
import { formatReport } from '../../src/cli/parity.js';
import { readManifest, runParity } from '../../src/pipeline/parity/index.js';

export interface ParityCase {
  name: string;
  dir: string;
  component: string;
  manifest: Record<string, unknown>;
}

export async function parityCases(root: string | null, dirs: readonly string[]): Promise<ParityCase[]> {
  const manifests = await Promise.all(dirs.map((d) => readManifest(d)));
  return dirs.map((d, i) => ({ name: d.slice((root ?? '').length + 1), dir: d, component: String(manifests[i].component ?? ''), manifest: manifests[i] }));
}

/** Runs the fixture in `dir`: every row within its tolerance. */
export async function expectParity(dir: string): Promise<void> {
  const report = await runParity(dir);
  console.log(formatReport(report));
  expect(report.rows.length).toBeGreaterThan(0);
  const failed = report.rows.filter((r) => !r.pass).map((r) => `${r.name}: rel ${r.rel} max_abs ${r.maxAbs}${r.error ? ` (${r.error})` : ''}`);
  expect(failed, failed.join('\n')).toEqual([]);
}
