// Profiler scopes per module instance, named by the module's state-dict path
// ('down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q'): a model names its tree
// once when it is built (nameModules), and each forward wraps its work in
// moduleScope(this, rt, fn), so every dispatch is attributed to the innermost module that
// recorded it (bench/layers.ts). Scopes nest, so a scope path holds every enclosing
// module's full path; its last segment is the module. A module that was never named
// (one built outside a named tree) opens no scope. Off (no profiler, or not profiling),
// moduleScope is one property test and a direct call.
import type { Runtime } from '../../gpu/runtime.js';
import { Module } from '../../nn/module.js';

const paths = new WeakMap<Module, string>();

function walk(value: unknown, path: string): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => walk(v, path ? `${path}.${i}` : `${i}`));
  } else if (value instanceof Module) {
    if (path) paths.set(value, path);
    for (const [k, v] of Object.entries(value)) {
      if (v instanceof Module || Array.isArray(v)) walk(v, path ? `${path}.${k}` : k);
    }
  }
}

/** Names every module under `root` by its path (the same names namedParams gives its
 *  weights, minus the weight's own field); the root itself is named `prefix` if given.
 *  A later call re-names (a model nested in a named model takes the outer paths). */
export function nameModules(root: Module, prefix = ''): void {
  walk(root, prefix);
}

/** The path nameModules gave `m`, or undefined. */
export function modulePath(m: Module): string | undefined {
  return paths.get(m);
}

/** Runs `fn` inside the profiler scope named by `m`'s path when `rt` is profiling and `m`
 *  was named; otherwise just runs it. */
export function moduleScope<T>(m: Module, rt: Runtime, fn: () => T): T {
  const p = rt.profiler;
  if (p === null || !p.enabled) return fn();
  const path = paths.get(m);
  return path ? p.inScope(path, fn) : fn();
}
