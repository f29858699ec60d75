// The README's grounded-generation example (the ```ts block under "## Library" that calls
// generateGrounded), run as written with `grounded-sd` resolved to this checkout's
// src/index.ts, in a child process as a user would run it. The printed values are checked
// against what the example's own settings imply, not against stored output.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const repo = resolve(__dirname, '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'gsd-readme-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function groundedExample(): string {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const library = readme.slice(readme.indexOf('\n## Library'));
  const blocks = [...library.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  const block = blocks.find((b) => b.includes('generateGrounded('));
  if (!block) throw new Error('README.md has no ```ts block calling generateGrounded under "## Library"');
  return block;
}

describe('README grounded-generation example', () => {
  it('runs and prints the sizes, classes, masks and DAAM words its settings imply', () => {
    const code = groundedExample().replace(/from 'grounded-sd'/g, `from '${join(repo, 'src', 'index.ts')}'`);
    const file = join(tmp, 'example.mts');
    writeFileSync(file, code);
    const run = spawnSync(process.execPath, ['--import', 'tsx', file], {
      cwd: repo, encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? tmp },
    });
    expect(run.status, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n');
    const size = Number(/randomGroundingModule\(rt, sd, (\d+)\)/.exec(code)?.[1]);
    expect(lines[0]).toBe(`${size} ${size} dog,cat`);
    expect(lines[1]).toBe([size * size, size * size].join(','));
    const words = lines[2].split(',');
    expect(words.slice(0, 2)).toEqual(['dog', 'cat']);
    expect(new Set(words)).toEqual(new Set(['dog', 'cat', 'a', 'photograph', 'of', 'and']));
    // Progress reached every stage of the chain.
    for (const stage of ['text', 'denoise', 'vae', 'grounding', 'daam']) expect(run.stderr).toContain(`${stage} `);
  });
});
