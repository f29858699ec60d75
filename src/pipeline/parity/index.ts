// Runs any golden fixture folder: reads manifest.json, picks the component handler by
// its `component` field, and evaluates every check the handler returns.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { evaluate, type ParityHandler, type ParityRow } from './types.js';

export type { ParityCheck, ParityRow, ParityHandler, ParityMetric } from './types.js';

/** manifest `component` -> module in this folder exporting `handler: ParityHandler`. */
const HANDLER_MODULES: Record<string, string> = {
  clip_tokenizer: 'tokenizer',
  clip_text: 'clip_text',
  unet: 'unet',
  vae: 'vae',
  schedulers: 'schedulers',
  grounding: 'grounding',
};

export function parityComponents(): string[] {
  return Object.keys(HANDLER_MODULES).sort();
}

async function loadHandler(component: string): Promise<ParityHandler | null> {
  const name = HANDLER_MODULES[component];
  if (!name) return null;
  // A computed specifier: handlers are optional modules, resolved at run time.
  const spec = `./${name}.js`;
  const mod = (await import(spec)) as { handler?: ParityHandler };
  return mod.handler ?? null;
}

/** JSON as Python's json.dump writes it: bare NaN / Infinity / -Infinity are allowed. */
export function parsePythonJson(text: string): Record<string, unknown> {
  const marked = text.replace(/(:\s*|\[\s*|,\s*)(-?Infinity|NaN)(?=\s*[,\]}])/g, '$1"__py_$2"');
  const special: Record<string, number> = { __py_Infinity: Infinity, '__py_-Infinity': -Infinity, __py_NaN: NaN };
  return JSON.parse(marked, (_, v) => (typeof v === 'string' && v in special ? special[v] : v)) as Record<string, unknown>;
}

export async function readManifest(dir: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(join(dir, 'manifest.json'), 'utf8');
  } catch {
    throw new InputError(`${dir} has no manifest.json: not a golden fixture folder`);
  }
  try {
    return parsePythonJson(text);
  } catch (e) {
    throw new InputError(`${join(dir, 'manifest.json')} is not valid JSON: ${(e as Error).message}`);
  }
}

export interface ParityReport {
  dir: string;
  component: string;
  rows: ParityRow[];
  pass: boolean;
}

export async function runParity(dir: string, log: (msg: string) => void = () => {}): Promise<ParityReport> {
  const manifest = await readManifest(dir);
  const component = String(manifest.component ?? '');
  const handler = await loadHandler(component);
  if (!handler) {
    throw new InputError(`${dir}: component '${component}' has no parity handler (known: ${parityComponents().join(', ')})`);
  }
  const checks = await handler.run(dir, manifest, log);
  const rows = checks.map(evaluate);
  if (rows.length === 0) rows.push({ name: '(no outputs)', maxAbs: NaN, maxRef: NaN, rel: NaN, metric: 'exact', tol: 0, pass: false, error: 'the handler produced no checks' });
  return { dir, component, rows, pass: rows.every((r) => r.pass) };
}
