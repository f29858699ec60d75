// Shared test helpers: one runtime per test file (poisoned allocations), seeded random
// inputs, the relative-L2 comparison, and golden-fixture location.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, expect, type TestContext } from 'vitest';
import { Runtime } from '../src/gpu/runtime.js';
import { Tensor } from '../src/tensor/tensor.js';

let rtPromise: Promise<Runtime> | null = null;

/** The file's runtime; every new tensor is NaN-filled so unwritten outputs fail. */
export function runtime(): Promise<Runtime> {
  if (!rtPromise) {
    rtPromise = Runtime.create().then((rt) => {
      rt.poison = true;
      return rt;
    });
    afterAll(async () => {
      const rt = await rtPromise;
      rtPromise = null;
      rt?.destroy();
    });
  }
  return rtPromise;
}

/** Mulberry32: small, seeded, good enough for test inputs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform in [lo, hi) with |x| >= 1e-3 (non-zero inputs). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = lo + (hi - lo) * r();
    if (Math.abs(v) < 1e-3) v = v < 0 ? -1e-3 : 1e-3;
    out[i] = v;
  }
  return out;
}

export function randomTensor(rt: Runtime, shape: number[], seed: number, lo = -1, hi = 1): { t: Tensor; data: Float32Array } {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = randomArray(n, seed, lo, hi);
  return { t: Tensor.from(rt, data, shape), data };
}

/** Tolerances per op class (relative L2), as in DESIGN.md section 5. */
export const TOL = { elementwise: 1e-6, reduction: 1e-5, matmul: 1e-5, f16: 2e-3 } as const;

export interface CloseReport {
  relL2: number;
  maxAbs: number;
  bad: number[];
}

export function compare(actual: ArrayLike<number>, ref: ArrayLike<number>): CloseReport {
  let num = 0;
  let den = 0;
  let maxAbs = 0;
  const bad: number[] = [];
  for (let i = 0; i < ref.length; i++) {
    const a = actual[i];
    const d = a - ref[i];
    if (!Number.isFinite(a)) {
      if (bad.length < 8) bad.push(i);
      num = Infinity;
      continue;
    }
    num += d * d;
    den += ref[i] * ref[i];
    if (Math.abs(d) > maxAbs) maxAbs = Math.abs(d);
  }
  return { relL2: Math.sqrt(num / Math.max(den, 1e-300)), maxAbs, bad };
}

/** Fails with rel L2, max abs error and the first non-finite indices. */
export function expectClose(actual: ArrayLike<number>, ref: ArrayLike<number>, opts: { label: string; relL2: number }): CloseReport {
  expect(actual.length, `${opts.label}: length`).toBe(ref.length);
  const r = compare(actual, ref);
  const msg = `${opts.label}: relL2=${r.relL2.toExponential(3)} (tol ${opts.relL2}) maxAbs=${r.maxAbs.toExponential(3)}` +
    (r.bad.length ? ` non-finite at ${r.bad.join(',')}` : '');
  expect(r.relL2 <= opts.relL2, msg).toBe(true);
  return r;
}

/** Central finite differences of a scalar function of a Float64Array. */
export function finiteDiff(f: (x: Float64Array) => number, x: Float64Array, idx: number[], h = 1e-6): number[] {
  return idx.map((i) => {
    const xp = Float64Array.from(x);
    const xm = Float64Array.from(x);
    xp[i] += h;
    xm[i] -= h;
    return (f(xp) - f(xm)) / (2 * h);
  });
}

/** The golden fixtures folder, or null (test skips) — under CI a missing folder fails. */
export function goldenDir(sub = ''): string | null {
  const dir = resolve(__dirname, '..', '..', 'shared', 'golden', sub);
  if (existsSync(dir)) return dir;
  if (UNDER_CI) throw new Error(`golden fixtures missing at ${dir} (required under CI=true)`);
  console.warn(`skipping: golden fixtures not found at ${dir}`);
  return null;
}

/** True under CI (`CI=true`, which .ci/run sets): there a missing requirement fails instead of skipping. */
export const UNDER_CI = process.env.CI === 'true';

/**
 * A requirement a test cannot run without: outside CI an unmet one is a visible skip with
 * its reason; under CI it is a failure, so nothing passes without having checked.
 */
export function requireOrSkip(ctx: TestContext, ok: boolean, reason: string): void {
  if (ok) return;
  if (UNDER_CI) throw new Error(`${reason} (required under CI=true)`);
  ctx.skip(reason);
}

/** f16 tests need the adapter's shader-f16 (lavapipe has it). */
export function requireF16(rt: Runtime, ctx: TestContext): void {
  requireOrSkip(ctx, rt.gpu.hasF16, `the adapter (${rt.gpu.report.description || rt.gpu.report.device || 'unknown'}) has no shader-f16`);
}
