// Parity checks against golden fixture folders (weights.safetensors, io.safetensors,
// manifest.json). Each component module computes outputs and pairs them with the stored
// references; this file defines the comparison every component shares.

export type ParityMetric =
  /** max |a - e| / max |e| <= tol (the fixtures' "max_abs_diff / max_abs_ref"). */
  | 'rel_max'
  /** max |a - e| <= tol (structurally zero or noise-driven tensors). */
  | 'abs'
  /** every element identical (token ids, timesteps). */
  | 'exact';

export interface ParityCheck {
  name: string;
  actual: ArrayLike<number>;
  expected: ArrayLike<number>;
  metric: ParityMetric;
  tol: number;
}

export interface ParityRow {
  name: string;
  maxAbs: number;
  maxRef: number;
  rel: number;
  metric: ParityMetric;
  tol: number;
  pass: boolean;
  /** Set when the output could not be computed at all. */
  error?: string;
}

/** How a handler runs its models (the fixtures are f32 references either way). */
export interface ParityOptions {
  /** Weight and activation dtype of the models (models/precision.ts); default f32. Handlers
   *  of components without models ignore it. */
  dtype?: 'f32' | 'f16';
}

export interface ParityHandler {
  /** Runs the fixture in `dir` and returns the checks (throws if it cannot run). */
  run(dir: string, manifest: Record<string, unknown>, log: (msg: string) => void, opts?: ParityOptions): Promise<ParityCheck[]>;
  /** For a component whose fixture kinds arrive one by one: whether this handler checks
   *  the fixture (absent: every fixture of the component). */
  accepts?(manifest: Record<string, unknown>): boolean;
}

export function evaluate(c: ParityCheck): ParityRow {
  if (c.actual.length !== c.expected.length) {
    return { name: c.name, maxAbs: NaN, maxRef: NaN, rel: NaN, metric: c.metric, tol: c.tol, pass: false, error: `length ${c.actual.length} != expected ${c.expected.length}` };
  }
  let maxAbs = 0;
  let maxRef = 0;
  let finite = true;
  for (let i = 0; i < c.expected.length; i++) {
    const a = c.actual[i];
    const e = c.expected[i];
    if (!Number.isFinite(a)) finite = false;
    const d = Math.abs(a - e);
    if (d > maxAbs) maxAbs = d;
    if (Math.abs(e) > maxRef) maxRef = Math.abs(e);
  }
  if (!finite) maxAbs = Infinity;
  const rel = maxRef > 0 ? maxAbs / maxRef : maxAbs;
  const pass = c.metric === 'exact' ? maxAbs === 0 : c.metric === 'abs' ? maxAbs <= c.tol : rel <= c.tol;
  return { name: c.name, maxAbs, maxRef, rel, metric: c.metric, tol: c.tol, pass };
}
