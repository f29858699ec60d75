// Runs ops with a kernel variant forced (gpu/variants.ts) and checks that the forced
// variant's kernels are the ones that recorded the family's dispatches, so a test of a
// GPU variant on the software adapter cannot silently run the default kernel.
import { expect, vi, type TestContext } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.js';
import type { VariantChoice } from '../../src/gpu/variants.js';
import { requireOrSkip } from '../helpers.js';

/** fn under `choice`; every dispatch whose entry starts with one of `watch` must come from
 *  a kernel family in `families`, and at least one must have run. */
export function forced<R>(
  rt: Runtime, choice: Partial<VariantChoice>, check: { watch: string[]; families: string[]; except?: string[] }, fn: () => R,
): R {
  const seen: { entry: string; family: string }[] = [];
  const dispatch = rt.dispatch.bind(rt);
  const spy = vi.spyOn(rt, 'dispatch').mockImplementation((spec, args) => {
    seen.push({ entry: spec.entry, family: spec.family });
    dispatch(spec, args);
  });
  try {
    return rt.variants.with(choice, fn);
  } finally {
    spy.mockRestore();
    const watched = seen.filter((s) => check.watch.some((w) => s.entry.startsWith(w)) && !check.except?.includes(s.entry));
    const list = watched.map((s) => `${s.family}/${s.entry}`).join(', ');
    expect(watched.length, `no ${check.watch.join('/')} dispatch recorded`).toBeGreaterThan(0);
    expect(watched.every((s) => check.families.includes(s.family)), `expected only ${check.families.join('/')}: ${list}`).toBe(true);
  }
}

/** Subgroup variants need the adapter's `subgroups` (lavapipe has it). */
export function requireSubgroups(rt: Runtime, ctx: TestContext): void {
  requireOrSkip(ctx, rt.gpu.hasSubgroups, `the adapter (${rt.gpu.report.description || 'unknown'}) has no subgroups feature`);
}
