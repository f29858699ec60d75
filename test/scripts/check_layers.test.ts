// scripts/check-layers.ts on a fake tree with one violation of each kind (each must be
// reported with its file and line), on a clean fake tree (nothing reported), through the
// command line, and on this checkout. No adapter needed.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkLayers, type Problem } from '../../scripts/check-layers.js';

const repo = resolve(__dirname, '../..');
const tsx = join(repo, 'node_modules/.bin/tsx');

/** A temp project: package.json with `dependencies`, and src files by path. */
function tree(files: Record<string, string>, dependencies: Record<string, string> = { webgpu: '^0.6.2' }): string {
  const root = mkdtempSync(join(tmpdir(), 'layers-'));
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'fake', dependencies }));
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  return root;
}

/** Files that obey every rule, importing in each allowed way. */
const CLEAN: Record<string, string> = {
  'src/gpu/runtime.ts': "import { create } from 'webgpu';\nimport { readFileSync } from 'node:fs';\nexport const rt = create;\nexport const r = readFileSync;\n",
  'src/tensor/tensor.ts': "import { rt } from '../gpu/runtime.js';\nexport class Tensor { r = rt; }\n",
  'src/ref/softmax.ts': "import type { Tensor } from '../tensor/tensor.js';\nexport type T = Tensor;\nexport const softmaxRef = (x: number[]) => x;\n",
  'src/nn/softmax.ts': "import { Tensor } from '../tensor/tensor.js';\nexport * from '../tensor/tensor.js';\nexport const softmax = (t: Tensor) => t;\n",
  'src/bench/peer.ts': [
    "import type * as tfjs from '@tensorflow/tfjs-core';",
    "import { softmaxRef } from '../ref/softmax.js';",
    "import { softmax } from '../nn/softmax.js';",
    "// import('./not-an-import.js') in a comment, and in a string:",
    "const s = \"import('./nor-this.js')\";",
    'export async function peer(): Promise<typeof tfjs> {',
    "  await import('node:fs');",
    "  return import('@tensorflow/tfjs-core');",
    '}',
    'export { softmax, softmaxRef, s };',
  ].join('\n'),
  'src/cli/main.ts': "import { peer } from '../bench/peer.js';\nexport const main = peer;\n",
  'src/index.ts': "export * from './nn/softmax.js';\nexport { main } from './cli/main.js';\n",
};

/** One violation per entry: the file, the line it sits on, and what the report must say. */
const VIOLATIONS: { name: string; file: string; text: string; line: number; says: RegExp }[] = [
  { name: 'import going up', file: 'src/nn/up.ts', text: "// header\nimport { main } from '../cli/main.js';\n", line: 2, says: /nn may not import cli/ },
  { name: 'import type going up', file: 'src/tensor/up.ts', text: "import type { Tensor } from '../nn/softmax.js';\n", line: 1, says: /tensor may not import nn/ },
  { name: 'side-effect import going up', file: 'src/gpu/side.ts', text: "\n\nimport '../tensor/tensor.js';\n", line: 3, says: /gpu may not import tensor/ },
  { name: 'export * from going up', file: 'src/gpu/reexport.ts', text: "export * from '../nn/softmax.js';\n", line: 1, says: /gpu may not import nn/ },
  { name: 'export { } from going up', file: 'src/models/reexport.ts', text: "export { main } from '../cli/main.js';\n", line: 1, says: /models may not import cli/ },
  { name: 'equal ranks', file: 'src/io/peer.ts', text: "import { softmax } from '../nn/softmax.js';\n", line: 1, says: /io may not import nn/ },
  { name: 'ref importing a value', file: 'src/ref/value.ts', text: "import { Tensor } from '../tensor/tensor.js';\n", line: 1, says: /ref may not import tensor/ },
  { name: 'relative import leaving src', file: 'src/bench/out.ts', text: "import { x } from '../../test/ref/x.js';\n", line: 1, says: /resolves outside src/ },
  { name: 're-export leaving src', file: 'src/pipeline/out.ts', text: "\nexport * from '../../bench/run.js';\n", line: 2, says: /resolves outside src/ },
  { name: 'dynamic import of a relative path', file: 'src/cli/lazy.ts', text: "export const f = async () =>\n  (await import('./main.js')).main;\n", line: 2, says: /dynamic import\(\) of a relative path/ },
  { name: 'dynamic import, computed', file: 'src/pipeline/computed.ts', text: "const spec = './x.js';\nexport const f = () => import(spec);\n", line: 2, says: /computed specifier/ },
  { name: 'dynamic import, template', file: 'src/cli/template.ts', text: "const n = 'x';\nexport const f = () => import(`./${n}.js`);\n", line: 2, says: /computed specifier/ },
  { name: 'static import of a dev dependency', file: 'src/bench/tf.ts', text: "import * as tf from '@tensorflow/tfjs-core';\nexport { tf };\n", line: 1, says: /'@tensorflow\/tfjs-core' is not in package.json "dependencies"/ },
  { name: 'unknown layer', file: 'src/extra/x.ts', text: 'export const x = 1;\n', line: 1, says: /src\/extra\/ is not a layer/ },
];

describe('check-layers', () => {
  it('a clean tree has no problems', () => {
    expect(checkLayers(tree(CLEAN))).toEqual([]);
  });

  it('reports every violation kind with its file and line, and nothing else', () => {
    const files = { ...CLEAN };
    for (const v of VIOLATIONS) files[v.file] = v.text;
    const problems = checkLayers(tree(files));
    for (const v of VIOLATIONS) {
      const hits = problems.filter((p: Problem) => p.file === v.file);
      expect(hits, v.name).toHaveLength(1);
      expect(hits[0].line, v.name).toBe(v.line);
      expect(hits[0].message, v.name).toMatch(v.says);
    }
    expect(problems).toHaveLength(VIOLATIONS.length);
  });

  it('the command prints file:line per problem and exits 1; 0 on a clean tree', () => {
    const bad = tree({ ...CLEAN, 'src/cli/lazy.ts': "export const f = () => import('./main.js');\n" });
    const r = spawnSync(tsx, ['scripts/check-layers.ts', bad], { cwd: repo, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("src/cli/lazy.ts:1: import('./main.js'): dynamic import() of a relative path");
    const out = execFileSync(tsx, ['scripts/check-layers.ts', tree(CLEAN)], { cwd: repo, encoding: 'utf8' });
    expect(out).toMatch(/layer check: imports go down only/);
  });

  it('this checkout passes', () => {
    const problems = checkLayers(repo).map((p) => `${p.file}:${p.line}: ${p.message}`);
    expect(problems).toEqual([]);
  });
});
