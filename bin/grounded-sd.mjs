#!/usr/bin/env node
// Entry point. In a source checkout (src/ present and tsx installed) it runs the
// TypeScript CLI through tsx, so a developer never runs a stale dist/; an installed
// package ships no src/ and runs the compiled dist/cli/main.js with plain node.
import { existsSync } from 'node:fs';

const srcMain = new URL('../src/cli/main.ts', import.meta.url);
const distMain = new URL('../dist/cli/main.js', import.meta.url);

async function loadTsx() {
  try {
    return await import('tsx/esm/api');
  } catch (e) {
    if (e?.code === 'ERR_MODULE_NOT_FOUND') return null;
    throw e;
  }
}

let main;
const tsx = existsSync(srcMain) ? await loadTsx() : null;
if (tsx) {
  tsx.register();
  ({ main } = await import(srcMain.href));
} else if (existsSync(distMain)) {
  ({ main } = await import(distMain.href));
} else {
  process.stderr.write(
    `grounded-sd: found neither ${distMain.pathname} (the built CLI) nor src/ with tsx; ` +
      'in a checkout run `npm ci` (installs tsx and builds dist/)\n',
  );
  process.exitCode = 1;
}
if (main) process.exitCode = await main(process.argv.slice(2));
