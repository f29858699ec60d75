// Every golden fixture folder under ../shared/golden (any folder with a manifest.json, at
// any depth) through the same runner `grounded-sd parity` uses: each stored output must be
// within the manifest's tolerance. Hidden fixture sets of the same format run the same way.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatReport } from '../../src/cli/parity.js';
import { runParity } from '../../src/pipeline/parity/index.js';
import { goldenDir } from '../helpers.js';

function fixtureDirs(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    if (existsSync(join(dir, 'manifest.json'))) out.push(dir);
    for (const f of readdirSync(dir).sort()) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

const root = goldenDir();
const dirs = root ? fixtureDirs(root) : [];

describe('golden parity', () => {
  it('finds the fixture folders', () => {
    if (!root) return;
    expect(dirs.length).toBeGreaterThanOrEqual(8);
  });

  it.each(dirs.map((d) => [d.slice((root ?? '').length + 1), d]))('%s passes within its tolerance', async (_name, dir) => {
    const report = await runParity(dir);
    console.log(formatReport(report));
    expect(report.rows.length).toBeGreaterThan(0);
    const failed = report.rows.filter((r) => !r.pass).map((r) => `${r.name}: rel ${r.rel} max_abs ${r.maxAbs}${r.error ? ` (${r.error})` : ''}`);
    expect(failed, failed.join('\n')).toEqual([]);
  }, 900_000);
});
