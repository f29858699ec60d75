// Enforces the layer order of DESIGN.md section 3: imports only go down.
// cli -> pipeline -> models -> nn -> tensor -> gpu; io sits below models.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';

const RANK: Record<string, number> = { gpu: 0, tensor: 1, io: 2, nn: 2, models: 3, pipeline: 4, cli: 5 };
const root = resolve(dirname(new URL(import.meta.url).pathname), '..', 'src');

function* files(dir: string): Generator<string> {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

const layerOf = (p: string) => relative(root, p).split('/')[0];
const problems: string[] = [];
for (const file of files(root)) {
  const from = layerOf(file);
  if (!(from in RANK)) continue;
  const src = readFileSync(file, 'utf8');
  for (const m of src.matchAll(/from\s+'(\.[^']+)'/g)) {
    const to = layerOf(resolve(dirname(file), m[1]));
    if (!(to in RANK) || to === from) continue;
    const ok = RANK[to] < RANK[from] && !(from === 'nn' && to === 'io') && !(from === 'io' && to === 'nn');
    if (!ok) problems.push(`${relative(root, file)} imports ${m[1]} (${from} may not import ${to})`);
  }
}
if (problems.length) {
  console.error(`layer check failed:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('layer check: imports go down only');
