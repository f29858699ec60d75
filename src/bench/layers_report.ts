// Per-layer benchmark arithmetic and output (bench/layers.ts runs the models): profiled
// dispatches -> (model, module, op, shape) rows with GFLOP/s, GB/s, roofline fraction and
// share of the total; op-kind totals and per-model summaries; the markdown tables and the
// PNG chart of time share per op kind. Pure (no GPU), so it is tested on made-up input.
import type { DispatchTiming } from '../gpu/profiler.js';
import { encodePng } from '../io/png.js';
import { createImage, fillRect, type Rgb } from '../io/render/canvas.js';
import { drawText, fitText, textWidth } from '../io/render/font.js';
import { dispatchCost, type DispatchCost } from './cost.js';
import { rooflineMs, type ProbeResult } from './report.js';

/** The module column of dispatches recorded in a model's scope but in no module's. */
export const TOP_LEVEL = '(top level)';

/** One dispatch, attributed and costed. */
export interface LayerDispatch {
  model: string;
  module: string;
  kernel: string;
  dtype: 'f32' | 'f16';
  cost: DispatchCost;
  ms: number;
  hostAt: number;
  pipelineMs: number;
  segment: number;
  segmentMs: number;
}

/** Model = the first segment of the scope path (`fallback` outside any scope); module =
 *  the last segment (module scopes hold full paths, models/layers/module_scope.ts). */
export function attribute(records: readonly DispatchTiming[], fallback: string): LayerDispatch[] {
  return records.map((r) => {
    const parts = r.scope ? r.scope.split('/') : [];
    const info = r.info;
    const cost = info ? dispatchCost(info, r.label) : { op: 'unknown', shape: '', flops: 0, bytes: 0 };
    return {
      model: parts[0] ?? fallback,
      module: parts.length > 1 ? parts[parts.length - 1] : TOP_LEVEL,
      kernel: info?.entry ?? r.label,
      dtype: info?.dtype ?? 'f32',
      cost,
      ms: r.ms,
      hostAt: r.hostAt,
      pipelineMs: info?.pipelineMs ?? 0,
      segment: r.segment,
      segmentMs: r.segmentMs,
    };
  });
}

/** Wall mode: each segment (one scope's submit) split among its dispatches in proportion
 *  to their roofline time (equally when none has a cost). */
export function splitSegments(ds: LayerDispatch[], probe: ProbeResult): void {
  const bySegment = new Map<number, LayerDispatch[]>();
  for (const d of ds) if (d.segment >= 0) bySegment.set(d.segment, [...(bySegment.get(d.segment) ?? []), d]);
  for (const list of bySegment.values()) {
    const est = list.map((d) => rooflineMs(d.cost.flops, d.cost.bytes, probe));
    const sum = est.reduce((a, b) => a + b, 0);
    list.forEach((d, i) => (d.ms = sum > 0 ? (d.segmentMs * est[i]) / sum : d.segmentMs / list.length));
  }
}

export interface LayerRow {
  model: string;
  module: string;
  op: string;
  shape: string;
  /** Kernel entry point and the element type it ran in. */
  kernel: string;
  dtype: 'f32' | 'f16';
  calls: number;
  ms: number;
  flops: number;
  bytes: number;
  gflops: number;
  gbps: number;
  roofline_pct: number;
  /** Of the whole run's GPU time. */
  share: number;
  /** Of its model's GPU time. */
  model_share: number;
}

const rate = (x: number, ms: number) => (ms > 0 ? x / 1e6 / ms : 0);
const roofPct = (flops: number, bytes: number, ms: number, probe: ProbeResult) => (ms > 0 ? (100 * rooflineMs(flops, bytes, probe)) / ms : 0);

/** Rows per (model, module, kernel, dtype, shape), in first-dispatch order. */
export function buildRows(ds: readonly LayerDispatch[], probe: ProbeResult): LayerRow[] {
  const rows = new Map<string, LayerRow>();
  const modelMs = new Map<string, number>();
  let total = 0;
  for (const d of ds) {
    const key = [d.model, d.module, d.kernel, d.dtype, d.cost.shape].join('\0');
    const r = rows.get(key) ?? {
      model: d.model, module: d.module, op: d.cost.op, shape: d.cost.shape, kernel: d.kernel, dtype: d.dtype,
      calls: 0, ms: 0, flops: 0, bytes: 0, gflops: 0, gbps: 0, roofline_pct: 0, share: 0, model_share: 0,
    };
    r.calls++;
    r.ms += d.ms;
    r.flops += d.cost.flops;
    r.bytes += d.cost.bytes;
    rows.set(key, r);
    modelMs.set(d.model, (modelMs.get(d.model) ?? 0) + d.ms);
    total += d.ms;
  }
  const out = [...rows.values()];
  for (const r of out) {
    r.gflops = rate(r.flops, r.ms);
    r.gbps = rate(r.bytes, r.ms);
    r.roofline_pct = roofPct(r.flops, r.bytes, r.ms, probe);
    r.share = total > 0 ? r.ms / total : 0;
    const m = modelMs.get(r.model) ?? 0;
    r.model_share = m > 0 ? r.ms / m : 0;
  }
  return out;
}

export interface OpTotal {
  model: string;
  op: string;
  calls: number;
  ms: number;
  flops: number;
  bytes: number;
  gflops: number;
  gbps: number;
  roofline_pct: number;
  /** Of its model's GPU time. */
  share: number;
}

/** Totals per (model, op kind), each model's largest first. */
export function opTotals(rows: readonly LayerRow[], probe: ProbeResult): OpTotal[] {
  const m = new Map<string, OpTotal>();
  for (const r of rows) {
    const key = `${r.model}\0${r.op}`;
    const t = m.get(key) ?? { model: r.model, op: r.op, calls: 0, ms: 0, flops: 0, bytes: 0, gflops: 0, gbps: 0, roofline_pct: 0, share: 0 };
    t.calls += r.calls;
    t.ms += r.ms;
    t.flops += r.flops;
    t.bytes += r.bytes;
    t.share += r.model_share;
    m.set(key, t);
  }
  const models = [...new Set(rows.map((r) => r.model))];
  const out = [...m.values()].sort((a, b) => models.indexOf(a.model) - models.indexOf(b.model) || b.ms - a.ms);
  for (const t of out) {
    t.gflops = rate(t.flops, t.ms);
    t.gbps = rate(t.bytes, t.ms);
    t.roofline_pct = roofPct(t.flops, t.bytes, t.ms, probe);
  }
  return out;
}

export interface ModelSummary {
  model: string;
  /** GPU time summed over its dispatches. */
  gpu_ms: number;
  flops: number;
  bytes: number;
  gflops: number;
  gbps: number;
  dispatches: number;
  /** Host time between the model's first and last dispatch, less pipeline creation. */
  host_ms: number;
  host_us_per_dispatch: number;
  /** Host time creating pipelines (shader compilation) during the pass. */
  pipeline_ms: number;
  /** Wall time of the pass: recording, then until the queue is done. */
  wall_ms: number;
  /** Peak pooled GPU bytes during the pass. */
  peak_bytes: number;
  share: number;
}

/** Per-model GPU and host totals; `passes` gives each model's wall ms and peak bytes. */
export function modelSummaries(ds: readonly LayerDispatch[], passes: ReadonlyMap<string, { wallMs: number; peakBytes: number }>): ModelSummary[] {
  const total = ds.reduce((a, d) => a + d.ms, 0);
  const models = [...new Set(ds.map((d) => d.model))];
  return models.map((model) => {
    const mine = ds.filter((d) => d.model === model);
    const gpu = mine.reduce((a, d) => a + d.ms, 0);
    const flops = mine.reduce((a, d) => a + d.cost.flops, 0);
    const bytes = mine.reduce((a, d) => a + d.cost.bytes, 0);
    const pipelineMs = mine.reduce((a, d) => a + d.pipelineMs, 0);
    // Gaps between consecutive dispatches of the model (its pass records synchronously).
    let span = 0;
    for (let i = 1; i < mine.length; i++) span += Math.max(0, mine[i].hostAt - mine[i - 1].hostAt);
    const host = Math.max(0, span - pipelineMs);
    const pass = passes.get(model);
    return {
      model, gpu_ms: gpu, flops, bytes, gflops: rate(flops, gpu), gbps: rate(bytes, gpu), dispatches: mine.length,
      host_ms: host, host_us_per_dispatch: mine.length > 1 ? (1000 * host) / (mine.length - 1) : 0, pipeline_ms: pipelineMs,
      wall_ms: pass?.wallMs ?? 0, peak_bytes: pass?.peakBytes ?? 0, share: total > 0 ? gpu / total : 0,
    };
  });
}

export interface LayersSummary {
  adapter: string;
  date: string;
  model: string;
  size: number;
  dtype: 'f32' | 'f16';
  backward: boolean;
  warmup: number;
  timing: 'timestamp' | 'wall';
  timing_note: string;
  probe: { fma_gflops: number; copy_gbps: number };
  matmul_case: string;
  matmul_gflops: number;
  /** GFLOP/s of a model over the matmul row (SD: text_encoder, unet, vae_decoder; detector: its stages). */
  efficiency: Record<string, number>;
  peak_bytes: number;
  total_ms: number;
  host_ms: number;
  host_us_per_dispatch: number;
  models: ModelSummary[];
  ops: OpTotal[];
  notes: string[];
  /** --model detector only. */
  detector?: DetectorBenchSummary;
}

/** bench layers --model detector: what the pass saw and the throughput. */
export interface DetectorBenchSummary {
  weights: string;
  arch: 'v1' | 'v2';
  sha256: string | null;
  /** Proposals into the box head, detections into the mask head (profiled pass). */
  proposals: number;
  detections: number;
  /** Host time per part of the profiled pass, ms (read-backs include the GPU wait). */
  host_ms: { readback: number; proposals: number; postprocess_detections: number; mask_select_and_crops: number };
  /** Wall time of the profiled pass, ms (profiling adds submits and waits). */
  profiled_pass_ms: number;
  /** Unprofiled detect() calls: count, mean seconds per image, images per second. */
  timed_images: number;
  seconds_per_image: number;
  images_per_second: number;
}

export interface LayersReport {
  rows: LayerRow[];
  summary: LayersSummary;
}

// ---- markdown ----

const fix = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : '-');
const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

function table(head: string[], body: string[][], right: boolean[]): string[] {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(head), `|${right.map((r) => (r ? '---:' : ':---')).join('|')}|`, ...body.map(line)];
}

/** The top `top` layers per model, op-kind totals per model and the model summary. */
export function formatMarkdown(r: LayersReport, top = 10): string {
  const s = r.summary;
  const lines = [
    `Adapter: ${s.adapter}. Model ${s.model} at ${s.size}x${s.size}, ${s.dtype}${s.backward ? ', grounding backward and optimiser step' : ''}; ${s.warmup} warm-up pass(es).`,
    `Timing: ${s.timing} (${s.timing_note}). Roofline probe: ${fix(s.probe.fma_gflops, 2)} GFLOP/s FMA, ${fix(s.probe.copy_gbps, 2)} GB/s copy.`,
    `Matmul kernel row (${s.matmul_case}) in the same run: ${fix(s.matmul_gflops, 2)} GFLOP/s. Peak GPU memory ${mib(s.peak_bytes)}.`,
    '',
    ...table(
      ['model', 'GPU ms', 'GFLOP', 'GFLOP/s', 'vs matmul', 'dispatches', 'host us/dispatch', 'wall ms'],
      s.models.map((m) => {
        const eff = (s.efficiency as Record<string, number>)[m.model];
        return [m.model, fix(m.gpu_ms, 1), fix(m.flops / 1e9, 2), fix(m.gflops, 2), eff === undefined ? '' : pct(eff),
          String(m.dispatches), fix(m.host_us_per_dispatch, 0), fix(m.wall_ms, 0)];
      }),
      [false, true, true, true, true, true, true, true],
    ),
  ];
  for (const m of s.models) {
    const mine = r.rows.filter((row) => row.model === m.model).sort((a, b) => b.ms - a.ms).slice(0, top);
    lines.push('', `**${m.model}**: top ${mine.length} layers by GPU time`, '');
    lines.push(...table(
      ['module', 'op', 'shape', 'calls', 'ms', 'GFLOP/s', 'GB/s', 'roofline', 'share'],
      mine.map((row) => [row.module, row.op, row.shape, String(row.calls), fix(row.ms, 2), fix(row.gflops, 2), fix(row.gbps, 2), `${fix(row.roofline_pct, 1)}%`, pct(row.model_share)]),
      [false, false, false, true, true, true, true, true, true],
    ));
    lines.push('', `${m.model}: totals per op kind`, '');
    lines.push(...table(
      ['op', 'calls', 'ms', 'GFLOP/s', 'GB/s', 'roofline', 'share'],
      s.ops.filter((o) => o.model === m.model).map((o) => [o.op, String(o.calls), fix(o.ms, 2), fix(o.gflops, 2), fix(o.gbps, 2), `${fix(o.roofline_pct, 1)}%`, pct(o.share)]),
      [false, true, true, true, true, true, true],
    ));
  }
  if (s.detector) {
    const d = s.detector;
    lines.splice(4, 0, `Detector ${d.arch} (${d.weights}): ${d.proposals} proposals, ${d.detections} detections; ${fix(d.images_per_second, 3)} images/s (${fix(d.seconds_per_image, 2)} s per image over ${d.timed_images} unprofiled call(s)).`);
  }
  if (s.notes.length) lines.push('', ...s.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

// ---- PNG: one stacked bar per model, segments = op kinds' share of its GPU time ----

const COLOURS: Rgb[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
  [227, 119, 194], [188, 189, 34], [23, 190, 207], [57, 59, 121], [173, 73, 74],
];
const OTHER: Rgb = [170, 170, 170];

/** The chart's legend: the op kinds with the most GPU time over the run, one colour
 *  each; the rest share 'other'. */
export function chartOps(ops: readonly OpTotal[]): string[] {
  const ms = new Map<string, number>();
  for (const o of ops) ms.set(o.op, (ms.get(o.op) ?? 0) + o.ms);
  const ranked = [...ms.entries()].sort((a, b) => b[1] - a[1]).map(([op]) => op);
  return ranked.length <= COLOURS.length + 1 ? ranked : [...ranked.slice(0, COLOURS.length), 'other'];
}

export function chartPng(r: LayersReport): Buffer {
  const s = r.summary;
  const legend = chartOps(s.ops);
  const kind = (op: string) => (legend.includes(op) ? op : 'other');
  const colour = (op: string) => (op === 'other' ? OTHER : COLOURS[legend.indexOf(op)]);
  const sc = 2;
  const labelW = Math.max(...s.models.map((m) => textWidth(m.model, sc))) + 24;
  const plotW = 640;
  const barH = 28;
  const top = 48;
  const cols = 3;
  const width = labelW + plotW + 40;
  const colW = Math.floor((width - 16) / cols);
  const axisY = top + s.models.length * (barH + 12);
  const height = axisY + 40 + Math.ceil(legend.length / cols) * 24;
  const img = createImage(width, height, [255, 255, 255]);
  const ink: Rgb = [30, 30, 30];
  drawText(img, `GPU time share per op kind (${s.model} ${s.size}x${s.size}, ${s.timing})`, 8, 12, ink, sc);
  s.models.forEach((m, i) => {
    const y = top + i * (barH + 12);
    drawText(img, m.model, 8, y + 6, ink, sc);
    const shares = new Map<string, number>();
    for (const o of s.ops) if (o.model === m.model) shares.set(kind(o.op), (shares.get(kind(o.op)) ?? 0) + o.share);
    let acc = 0;
    for (const op of legend) {
      const x0 = labelW + Math.round(acc * plotW);
      acc += shares.get(op) ?? 0;
      const x1 = labelW + Math.round(acc * plotW);
      if (x1 > x0) fillRect(img, x0, y, x1 - x0, barH, colour(op));
    }
  });
  // Grid lines and ticks at 0, 25, 50, 75 and 100 %.
  for (let k = 0; k <= 4; k++) {
    const x = labelW + Math.round((k * plotW) / 4);
    fillRect(img, x, top - 4, 1, axisY - top, [200, 200, 200]);
    const tick = `${25 * k}%`;
    drawText(img, tick, x - Math.round(textWidth(tick, sc) / 2), axisY + 4, ink, sc);
  }
  legend.forEach((op, k) => {
    const x = 8 + (k % cols) * colW;
    const y = axisY + 32 + Math.floor(k / cols) * 24;
    fillRect(img, x, y, 16, 16, colour(op));
    drawText(img, fitText(op, colW - 30, sc), x + 22, y, ink, sc);
  });
  return encodePng(img.data, img.width, img.height);
}
