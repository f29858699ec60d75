// Scoped disposal: every tensor created while a scope is open is disposed when the scope
// ends, except the tensors reachable from its return value and those passed to keep().
import type { Tensor } from './tensor.js';

const stack: Set<Tensor>[] = [];

export function track(t: Tensor): void {
  stack[stack.length - 1]?.add(t);
}

/** Removes a tensor from the open scope so it outlives it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || out.has(value)) return;
  out.add(value);
  if (Array.isArray(value)) for (const v of value) collect(v, out);
  else if (value instanceof Map) for (const v of value.values()) collect(v, out);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, out);
}

function close<R>(scopeSet: Set<Tensor>, result: R): R {
  const kept = new Set<unknown>();
  collect(result, kept);
  const parent = stack[stack.length - 1];
  for (const t of scopeSet) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Runs fn; disposes the tensors it created that are not part of its result. */
export function scope<R>(fn: () => R): R {
  const s = new Set<Tensor>();
  stack.push(s);
  let result: R;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of s) t.dispose();
    throw e;
  }
  stack.pop();
  if (result instanceof Promise) throw new Error('scope(): use scopeAsync for async functions');
  return close(s, result);
}

/** Async variant: the scope stays open across awaits (do not interleave two scopes). */
export async function scopeAsync<R>(fn: () => Promise<R>): Promise<R> {
  const s = new Set<Tensor>();
  stack.push(s);
  const pop = () => {
    const i = stack.lastIndexOf(s);
    if (i >= 0) stack.splice(i, 1);
  };
  let result: R;
  try {
    result = await fn();
  } catch (e) {
    pop();
    for (const t of s) t.dispose();
    throw e;
  }
  pop();
  return close(s, result);
}
