// Runs any golden fixture folder: reads manifest.json, picks the component handler by
// its `component` field, and evaluates every check the handler returns.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { handler as clipText } from './clip_text.js';
import { runDetectorModelParity } from './detector_model.js';
import { isDetectorOpsManifest, runDetectorOpsParity } from './detector_ops.js';
import { handler as evalMiou } from './eval.js';
import { handler as grounded } from './grounded.js';
import { handler as grounding } from './grounding.js';
import { handler as schedulers } from './schedulers.js';
import { handler as tokenizer } from './tokenizer.js';
import { handler as torchPickle } from './torch_pickle.js';
import { evaluate, type ParityCheck, type ParityHandler, type ParityRow } from './types.js';
import { handler as unet } from './unet.js';
import { handler as vae } from './vae.js';

export type { ParityCheck, ParityRow, ParityHandler, ParityMetric } from './types.js';

/** The detector component: the ops unit cases (RoIAlign, NMS, box decoding, mask paste)
 *  and the Mask R-CNN model fixtures (v1 and v2, every stage), told apart by the manifest. */
const detector: ParityHandler = {
  run: (dir, manifest, log) => (isDetectorOpsManifest(manifest) ? runDetectorOpsParity(dir, manifest, log) : runDetectorModelParity(dir, manifest, log)),
};

/** manifest `component` -> its handler. A component missing here is reported by name. */
const HANDLERS: Record<string, ParityHandler> = {
  clip_tokenizer: tokenizer,
  clip_text: clipText,
  unet,
  vae,
  schedulers,
  grounding,
  grounded,
  eval: evalMiou,
  torch_pickle: torchPickle,
  detector,
};

export function parityComponents(): string[] {
  return Object.keys(HANDLERS).sort();
}

/** The handler for a manifest component (and, given the manifest, for that fixture kind),
 *  or null when this version has none. */
export function parityHandler(component: string, manifest?: Record<string, unknown>): ParityHandler | null {
  const h = Object.hasOwn(HANDLERS, component) ? HANDLERS[component] : null;
  if (h && manifest && h.accepts && !h.accepts(manifest)) return null;
  return h;
}

/** Every fixture folder at or below `root` (a folder holding manifest.json), sorted. */
export function fixtureDirs(root: string): string[] {
  const st = statSync(root, { throwIfNoEntry: false });
  if (!st) throw new InputError(`${root} does not exist`);
  if (!st.isDirectory()) throw new InputError(`${root} is not a folder (give a fixture folder or a folder of them)`);
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
  const handler = parityHandler(component, manifest);
  if (!handler) throw new NoHandlerError(dir, component);
  const checks = await handler.run(dir, manifest, log);
  const rows = checks.map(evaluate);
  rows.push(...uncompared(manifest, checks));
  if (rows.length === 0) rows.push({ name: '(no outputs)', maxAbs: NaN, maxRef: NaN, rel: NaN, metric: 'exact', tol: 0, pass: false, error: 'the handler produced no checks' });
  return { dir, component, rows, pass: rows.every((r) => r.pass) };
}

/** A fixture folder whose component this version cannot check yet. */
export class NoHandlerError extends InputError {
  constructor(readonly dir: string, readonly component: string) {
    super(`${dir}: no handler for component ${component || '(none)'} (this version checks: ${parityComponents().join(', ')})`);
  }
}

/** io.tensors kinds that are results: each must be compared, not only what a handler chose to. */
const RESULT_KINDS = new Set(['output', 'hook', 'intermediate', 'summary', 'check']);

/**
 * One failing row per result tensor the manifest lists but no check compared, so a handler
 * that silently skips an output (a model that stopped returning a hook) fails the fixture.
 * Entries marked `compare: "none"` are documentation only.
 */
export function uncompared(manifest: Record<string, unknown>, checks: ParityCheck[]): ParityRow[] {
  const io = manifest.io as { tensors?: Record<string, { kind?: string; compare?: unknown }> } | undefined;
  if (!io || typeof io !== 'object' || !io.tensors || typeof io.tensors !== 'object') return [];
  const seen = new Set(checks.map((c) => c.name));
  const rows: ParityRow[] = [];
  for (const [name, t] of Object.entries(io.tensors)) {
    if (!RESULT_KINDS.has(String(t?.kind)) || t?.compare === 'none' || seen.has(name)) continue;
    rows.push({ name, maxAbs: NaN, maxRef: NaN, rel: NaN, metric: 'exact', tol: 0, pass: false, error: `listed in the manifest as ${t.kind} but not compared` });
  }
  return rows;
}
