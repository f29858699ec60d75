// Output of the kernel benchmark: per-row arithmetic (GFLOP/s, GB/s, roofline fraction,
// speedup), the aligned table, the target summary, the JSON files and the PNG bar chart.
// Everything here is pure (no GPU), so it is tested without an adapter.
import { PNG } from 'pngjs';
import { writeFileAtomic } from '../io/atomic.js';

export type TimingMode = 'timestamp' | 'wall';

/** The adapter's ceilings measured by probe.ts. */
export interface ProbeResult {
  /** Independent vec4 FMA chains, 2 flops per FMA. */
  fmaGflops: number;
  /** Shader copy, read + written bytes per second / 1e9. */
  copyGbps: number;
  timing: TimingMode;
}

/** One row of `--json`: the keys the brief fixes, then the extras the table uses. */
export interface BenchRow {
  op: string;
  shape: string;
  ms: number | null;
  gflops: number | null;
  gbps: number | null;
  roofline_pct: number | null;
  peer_ms: number | null;
  speedup: number | null;
  min_ms: number | null;
  rel_l2: number | null;
  timing: TimingMode;
  /** Submit-to-done median per run, whatever `timing` is. */
  wall_ms: number | null;
  peer_wall_ms: number | null;
  /** src/bench/kernels/<family>.ts the row came from. */
  family: string;
  flops: number;
  bytes: number;
  reps: number;
  /** False when validate() threw, failed its tolerance, or the case did not run. */
  valid: boolean;
  error: string | null;
}

export interface Stats {
  median: number;
  min: number;
}

export function stats(samples: readonly number[]): Stats {
  if (samples.length === 0) throw new RangeError('stats of no samples');
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0] };
}

/** Time the roofline allows for `flops` and `bytes`: the slower of compute and memory. */
export function rooflineMs(flops: number, bytes: number, probe: ProbeResult): number {
  return 1000 * Math.max(flops / (probe.fmaGflops * 1e9), bytes / (probe.copyGbps * 1e9));
}

export interface RowInput {
  family: string;
  op: string;
  shape: string;
  flops: number;
  bytes: number;
  reps: number;
  timing: TimingMode;
  /** Per-run ms samples (one per trial) in `timing` mode, and wall samples. */
  samples: number[] | null;
  wallSamples: number[] | null;
  peerSamples: number[] | null;
  peerWallSamples: number[] | null;
  relL2: number | null;
  valid: boolean;
  error: string | null;
}

export function makeRow(r: RowInput, probe: ProbeResult): BenchRow {
  const t = r.samples?.length ? stats(r.samples) : null;
  const ms = t?.median ?? null;
  const peerMs = r.peerSamples?.length ? stats(r.peerSamples).median : null;
  const perMs = (x: number) => (ms && ms > 0 ? x / 1e6 / ms : null);
  return {
    op: r.op,
    shape: r.shape,
    ms,
    gflops: perMs(r.flops),
    gbps: perMs(r.bytes),
    roofline_pct: ms && ms > 0 ? (100 * rooflineMs(r.flops, r.bytes, probe)) / ms : null,
    peer_ms: peerMs,
    speedup: peerMs !== null && ms && ms > 0 ? peerMs / ms : null,
    min_ms: t?.min ?? null,
    rel_l2: r.relL2,
    timing: r.timing,
    wall_ms: r.wallSamples?.length ? stats(r.wallSamples).median : null,
    peer_wall_ms: r.peerWallSamples?.length ? stats(r.peerWallSamples).median : null,
    family: r.family,
    flops: r.flops,
    bytes: r.bytes,
    reps: r.reps,
    valid: r.valid,
    error: r.error,
  };
}

// ---- targets (the issue's acceptance numbers) ----

export interface Target {
  label: string;
  ops: string[];
  /** speedup: peer_ms / ms; copy_fraction: achieved GB/s / probe copy GB/s. */
  metric: 'speedup' | 'copy_fraction';
  min: number;
}

export const TARGETS: Target[] = [
  { label: 'matmul >= 1.5x tfjs', ops: ['matmul'], metric: 'speedup', min: 1.5 },
  { label: 'conv2d >= 1.5x tfjs', ops: ['conv2d'], metric: 'speedup', min: 1.5 },
  { label: 'attention >= 2x tfjs matmul+softmax+matmul', ops: ['attention'], metric: 'speedup', min: 2 },
  { label: 'groupnorm >= 50% of copy bandwidth', ops: ['groupnorm', 'group_norm'], metric: 'copy_fraction', min: 0.5 },
  { label: 'softmax >= 50% of copy bandwidth', ops: ['softmax'], metric: 'copy_fraction', min: 0.5 },
];

export interface TargetResult {
  label: string;
  rows: number;
  /** The worst row's value (every row must meet the target). */
  worst: number | null;
  geomean: number | null;
  /** null: nothing to judge (no rows, or no peer timings). */
  met: boolean | null;
  note: string;
}

export function evaluateTargets(rows: readonly BenchRow[], probe: ProbeResult, targets = TARGETS): TargetResult[] {
  return targets.map((t) => {
    const mine = rows.filter((r) => t.ops.includes(r.op));
    const base = { label: t.label, rows: mine.length, worst: null, geomean: null };
    if (mine.length === 0) return { ...base, met: null, note: 'no rows' };
    const values = mine.map((r) => (t.metric === 'speedup' ? r.speedup : r.gbps === null ? null : r.gbps / probe.copyGbps));
    const invalid = mine.filter((r) => !r.valid).length;
    if (values.some((v) => v === null)) {
      const why = t.metric === 'speedup' ? 'no peer timing' : 'not timed';
      return { ...base, met: invalid ? false : null, note: invalid ? `${invalid} row(s) failed` : why };
    }
    const vs = values as number[];
    const worst = Math.min(...vs);
    const geomean = Math.exp(vs.reduce((a, v) => a + Math.log(Math.max(v, 1e-12)), 0) / vs.length);
    const met = invalid === 0 && worst >= t.min;
    const note = invalid ? `${invalid} row(s) failed validation` : `worst of ${vs.length} row(s)`;
    return { label: t.label, rows: mine.length, worst, geomean, met, note };
  });
}

function formatValue(metric: Target['metric'], v: number | null): string {
  if (v === null) return '-';
  return metric === 'speedup' ? `${v.toFixed(2)}x` : `${(100 * v).toFixed(0)}%`;
}

export function formatTargets(results: readonly TargetResult[], targets = TARGETS): string {
  const lines = ['targets:'];
  results.forEach((r, i) => {
    const m = targets[i].metric;
    const verdict = r.met === null ? 'n/a' : r.met ? 'met' : 'NOT MET';
    const value = `${formatValue(m, r.worst)} (geomean ${formatValue(m, r.geomean)})`;
    lines.push(`  ${r.label.padEnd(44)} ${value.padEnd(26)} ${verdict.padEnd(8)} ${r.note}`);
  });
  return lines.join('\n');
}

// ---- table ----

const num = (v: number | null, digits: number) => (v === null ? '-' : v.toFixed(digits));

interface Column { head: string; left?: boolean; peer?: boolean; cell: (r: BenchRow) => string }

/** The aligned table; the tfjs columns only when `peer` (default: some row has a peer time). */
export function formatTable(rows: readonly BenchRow[], opts: { peer?: boolean } = {}): string {
  const peer = opts.peer ?? rows.some((r) => r.peer_ms !== null);
  const all: Column[] = [
    { head: 'op', left: true, cell: (r) => r.op },
    { head: 'shape', left: true, cell: (r) => r.shape },
    { head: 'ms', cell: (r) => num(r.ms, 3) },
    { head: 'min ms', cell: (r) => num(r.min_ms, 3) },
    { head: 'GFLOP/s', cell: (r) => num(r.gflops, 2) },
    { head: 'GB/s', cell: (r) => num(r.gbps, 2) },
    { head: 'roofline%', cell: (r) => num(r.roofline_pct, 1) },
    { head: 'tfjs ms', cell: (r) => num(r.peer_ms, 3), peer: true },
    { head: 'speedup', cell: (r) => (r.speedup === null ? '-' : `${r.speedup.toFixed(2)}x`), peer: true },
    { head: 'rel L2', cell: (r) => (r.rel_l2 === null ? '-' : r.rel_l2.toExponential(1)) },
    { head: 'timing', left: true, cell: (r) => r.timing },
    { head: '', left: true, cell: (r) => (r.valid ? '' : `FAILED${r.error ? `: ${r.error}` : ''}`) },
  ];
  const cols = all.filter((c) => peer || !c.peer);
  const body = rows.map((r) => cols.map((c) => c.cell(r)));
  const widths = cols.map((c, i) => Math.max(c.head.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (cols[i].left ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(cols.map((c) => c.head)), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

// ---- files ----

/** Writes JSON atomically (io/atomic.ts), so readers never see half a file. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** The `--json` sidecar: `<FILE>.meta.json`, so the row array keeps its shape. */
export const metaPath = (file: string): string => `${file}.meta.json`;

// ---- PNG chart: horizontal bars of speedup vs tfjs, one per row ----

// 5x7 bitmap font: 7 rows of 5 bits (bit 4 = leftmost column), two hex digits per row.
// Lower case is drawn as upper case; unknown characters as blanks.
const FONT: Record<string, string> = {
  A: '0e11111f111111', B: '1e11111e11111e', C: '0e11101010110e', D: '1e11111111111e',
  E: '1f10101e10101f', F: '1f10101e101010', G: '0e11101711110f', H: '1111111f111111',
  I: '0e04040404040e', J: '0702020202120c', K: '11121418141211', L: '1010101010101f',
  M: '111b1515111111', N: '11111915131111', O: '0e11111111110e', P: '1e11111e101010',
  Q: '0e11111115120d', R: '1e11111e141211', S: '0f10100e01011e', T: '1f040404040404',
  U: '1111111111110e', V: '11111111110a04', W: '1111111515150a',
  X: '11110a040a1111', Y: '1111110a040404', Z: '1f01020408101f',
  '0': '0e11131519110e', '1': '040c040404040e', '2': '0e11010204081f',
  '3': '1f02040201110e', '4': '02060a121f0202', '5': '1f101e0101110e', '6': '0608101e11110e',
  '7': '1f010204080808', '8': '0e11110e11110e', '9': '0e11110f01020c',
  '.': '00000000000c0c', '-': '0000001f000000', _: '0000000000001f', '/': '00010204081000',
  ':': '000c0c000c0c00', '(': '02040808080402', ')': '08040202020408', '%': '18190204081303',
  '+': '0004041f040400', ',': '000000000c0408', '=': '00001f001f0000',
  '>': '08040201020408', '<': '02040810080402',
};

type Rgb = [number, number, number];

class Canvas {
  readonly png: PNG;
  constructor(readonly width: number, readonly height: number) {
    this.png = new PNG({ width, height });
    this.rect(0, 0, width, height, [255, 255, 255]);
  }

  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y1 = Math.min(this.height, Math.round(y + h));
    for (let yy = y0; yy < y1; yy++) {
      for (let xx = x0; xx < x1; xx++) {
        const i = 4 * (yy * this.width + xx);
        this.png.data[i] = c[0];
        this.png.data[i + 1] = c[1];
        this.png.data[i + 2] = c[2];
        this.png.data[i + 3] = 255;
      }
    }
  }

  /** Draws text with its top-left corner at (x, y); each font pixel is `s` x `s`. */
  text(x: number, y: number, str: string, c: Rgb, s = 2): void {
    [...str.toUpperCase()].forEach((ch, k) => {
      const g = FONT[ch];
      if (!g) return;
      for (let row = 0; row < 7; row++) {
        const bits = parseInt(g.slice(2 * row, 2 * row + 2), 16);
        for (let col = 0; col < 5; col++) {
          if (bits & (16 >> col)) this.rect(x + (k * 6 + col) * s, y + row * s, s, s, c);
        }
      }
    });
  }
}

/** Width in pixels of `str` drawn at scale `s`. */
const textWidth = (str: string, s = 2) => str.length * 6 * s;

export function chartPng(rows: readonly BenchRow[], title = 'speedup vs tfjs (peer ms / ms)'): Buffer {
  const labels = rows.map((r) => `${r.op} ${r.shape}`.slice(0, 34));
  const labelW = Math.max(120, ...labels.map((l) => textWidth(l))) + 16;
  const plotW = 520;
  const rowH = 26;
  const top = 44;
  const bottom = 40;
  const width = labelW + plotW + 90;
  const height = top + rows.length * rowH + bottom;
  const cv = new Canvas(width, height);
  const speedups = rows.map((r) => r.speedup ?? 0);
  const maxX = Math.max(2, ...speedups) * 1.1;
  const step = maxX <= 4 ? 0.5 : maxX <= 10 ? 1 : Math.ceil(maxX / 10);
  const xOf = (v: number) => labelW + (v / maxX) * plotW;
  const ink: Rgb = [30, 30, 30];
  cv.text(8, 8, title, ink);
  // Grid and tick labels along the x axis.
  for (let v = 0; v <= maxX + 1e-9; v += step) {
    cv.rect(xOf(v), top - 4, 1, rows.length * rowH + 8, [225, 225, 225]);
    const tick = `${Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1)}x`;
    cv.text(xOf(v) - textWidth(tick) / 2, top + rows.length * rowH + 12, tick, ink);
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    cv.text(8, y + 6, labels[i], ink);
    if (r.speedup === null) {
      cv.text(labelW + 6, y + 6, 'no peer', [150, 150, 150]);
      return;
    }
    const colour: Rgb = !r.valid ? [150, 150, 150] : r.speedup >= 1 ? [46, 139, 87] : [214, 96, 77];
    cv.rect(labelW, y + 4, xOf(r.speedup) - labelW, rowH - 8, colour);
    // Right of the bar, or of the 1.0x line for short bars, so the line never crosses it.
    cv.text(Math.max(xOf(r.speedup), xOf(1)) + 6, y + 6, `${r.speedup.toFixed(2)}x`, ink);
  });
  // Axes, then the 1.0x line on top of the bars.
  cv.rect(labelW, top - 4, 2, rows.length * rowH + 8, ink);
  cv.rect(labelW, top + rows.length * rowH + 4, plotW, 2, ink);
  cv.rect(xOf(1) - 1, top - 8, 2, rows.length * rowH + 12, [200, 30, 30]);
  cv.text(xOf(1) + 4, top - 12, '1.0x', [200, 30, 30], 1);
  return PNG.sync.write(cv.png);
}

export async function writePngAtomic(file: string, rows: readonly BenchRow[]): Promise<void> {
  await writeFileAtomic(file, chartPng(rows));
}
