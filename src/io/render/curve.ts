// Line charts as an RGBA picture (training curves: loss and validation mIoU against the
// step): panels stacked vertically sharing one x axis, each with its own y range, ticks on
// "nice" values (1, 2 or 5 times a power of ten), grid lines, a legend, and one polyline
// per series (points marked when a series has few of them). Text uses the bitmap font of
// font.ts; everything is drawn at an integer scale, so the picture stays crisp.
import { InputError } from '../../gpu/errors.js';
import { writePng } from '../png.js';
import { createImage, fillRect, type Rgb, type RgbaImage } from './canvas.js';
import { drawText, LINE_HEIGHT, textHeight, textWidth } from './font.js';

export interface CurveSeries {
  name: string;
  color: Rgb;
  /** (x, y) points in increasing x; non-finite y values are left out. */
  points: ReadonlyArray<readonly [number, number]>;
}

export interface CurvePanel {
  /** Y-axis caption. */
  label: string;
  series: readonly CurveSeries[];
  /** Fixed y range (default: the data's, widened to nice ticks). */
  yMin?: number;
  yMax?: number;
}

export interface CurveChartSpec {
  title: string;
  xLabel: string;
  panels: readonly CurvePanel[];
  /** Pixel scale of every length and of the font (default 2). */
  scale?: number;
}

const INK: Rgb = [33, 33, 33];
const GRID: Rgb = [225, 225, 225];
const MUTED: Rgb = [120, 120, 120];
const WHITE: Rgb = [255, 255, 255];
const PLOT_W = 300;
const PLOT_H = 110;
/** Series with at most this many points get a marker at each. */
const MARK_POINTS = 40;

/** Ticks from lo to hi (widened to multiples of a 1/2/5 x 10^k step), about `n` of them. */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    return niceTicks(lo - pad, lo + pad, n);
  }
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) as number;
  const out: number[] = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  if (out[out.length - 1] < hi - step * 1e-9) out.push(out[out.length - 1] + step);
  return out;
}

/** Fewest decimals (up to 6) that write every tick exactly. */
function tickText(ticks: number[]): string[] {
  let d = 0;
  while (d < 6 && ticks.some((t) => Math.abs(Math.round(t * 10 ** d) - t * 10 ** d) > 1e-6 * Math.max(1, Math.abs(t * 10 ** d)))) d++;
  return ticks.map((t) => t.toFixed(d));
}

function checkSpec(spec: CurveChartSpec): void {
  if (spec.panels.length === 0) throw new InputError('curve chart: no panels to draw');
  if (spec.scale !== undefined && !(Number.isInteger(spec.scale) && spec.scale >= 1 && spec.scale <= 8)) throw new InputError(`curve chart: scale ${spec.scale} must be an integer in 1..8`);
  for (const p of spec.panels) {
    for (const s of p.series) {
      const bad = s.points.findIndex(([x], i) => !Number.isFinite(x) || (i > 0 && x < s.points[i - 1][0]));
      if (bad >= 0) throw new InputError(`curve chart: series '${s.name}' point ${bad} has x ${s.points[bad][0]}; x values must be finite and increasing`);
    }
  }
}

/** Draws the chart. */
export function renderCurveChart(spec: CurveChartSpec): RgbaImage {
  checkSpec(spec);
  const s = spec.scale ?? 2;
  const finite = (ser: CurveSeries) => ser.points.filter(([, y]) => Number.isFinite(y));
  const xs = spec.panels.flatMap((p) => p.series.flatMap((ser) => finite(ser).map(([x]) => x)));
  const xTicks = xs.length ? niceTicks(Math.min(...xs), Math.max(...xs), 6) : [0, 1];
  const [x0, x1] = [xTicks[0], xTicks[xTicks.length - 1]];
  const panels = spec.panels.map((p) => {
    const ys = p.series.flatMap((ser) => finite(ser).map(([, y]) => y));
    const lo = p.yMin ?? (ys.length ? Math.min(...ys) : 0);
    const hi = p.yMax ?? (ys.length ? Math.max(...ys) : 1);
    const ticks = p.yMin !== undefined && p.yMax !== undefined ? niceTicks(lo, hi, 5).filter((t) => t >= lo - 1e-12 && t <= hi + 1e-12) : niceTicks(lo, hi, 5);
    return { p, ticks, labels: tickText(ticks), lo: p.yMin ?? ticks[0], hi: p.yMax ?? ticks[ticks.length - 1] };
  });
  const axisLeft = Math.max(...panels.flatMap((q) => q.labels.map((l) => textWidth(l, 1)))) + 8;
  const width = axisLeft + PLOT_W + 12;
  const panelH = LINE_HEIGHT + 4 + PLOT_H + 8;
  const top = 6 + LINE_HEIGHT + 6;
  const height = top + panels.length * panelH + LINE_HEIGHT + 2 * LINE_HEIGHT;
  const img = createImage(width * s, height * s, WHITE);
  const rect = (x: number, y: number, w: number, h: number, c: Rgb) => fillRect(img, Math.round(x * s), Math.round(y * s), Math.max(1, Math.round(w * s)), Math.max(1, Math.round(h * s)), c);
  const text = (t: string, x: number, y: number, c: Rgb) => drawText(img, t, Math.round(x * s), Math.round(y * s), c, s);
  text(spec.title, (width - textWidth(spec.title, 1)) / 2, 6, INK);
  const xOf = (x: number) => axisLeft + ((x - x0) / (x1 - x0 || 1)) * PLOT_W;
  const xLabels = tickText(xTicks);

  panels.forEach((q, k) => {
    const py = top + k * panelH;
    // Caption and legend on one line above the plot.
    text(q.p.label, 2, py, MUTED);
    let lx = axisLeft + textWidth(q.p.label, 1) + 10;
    for (const ser of q.p.series) {
      rect(lx, py + 2, 8, 3, ser.color);
      text(ser.name, lx + 11, py, INK);
      lx += 11 + textWidth(ser.name, 1) + 10;
    }
    const plotTop = py + LINE_HEIGHT + 4;
    const yOf = (v: number) => plotTop + PLOT_H - ((Math.min(Math.max(v, q.lo), q.hi) - q.lo) / (q.hi - q.lo || 1)) * PLOT_H;
    q.ticks.forEach((t, i) => {
      const ty = yOf(t);
      rect(axisLeft, ty, PLOT_W, 1 / s, GRID);
      text(q.labels[i], axisLeft - 5 - textWidth(q.labels[i], 1), ty - textHeight(1) / 2 + 1, INK);
    });
    xTicks.forEach((t) => rect(xOf(t), plotTop, 1 / s, PLOT_H, GRID));
    rect(axisLeft, plotTop, 1 / s, PLOT_H + 1 / s, INK);
    rect(axisLeft, plotTop + PLOT_H, PLOT_W, 1 / s, INK);
    for (const ser of q.p.series) {
      const pts = finite(ser).map(([x, y]) => [Math.round(xOf(x) * s), Math.round(yOf(y) * s)] as const);
      for (let i = 1; i < pts.length; i++) line(img, pts[i - 1], pts[i], ser.color, s);
      if (pts.length <= MARK_POINTS) for (const [px, py2] of pts) fillRect(img, px - s, py2 - s, 2 * s + 1, 2 * s + 1, ser.color);
    }
    if (k === panels.length - 1) {
      xTicks.forEach((t, i) => text(xLabels[i], xOf(t) - textWidth(xLabels[i], 1) / 2, plotTop + PLOT_H + 3, INK));
      text(spec.xLabel, axisLeft + (PLOT_W - textWidth(spec.xLabel, 1)) / 2, plotTop + PLOT_H + 3 + LINE_HEIGHT + 2, MUTED);
    }
  });
  return img;
}

/** A line `t` pixels thick (Bresenham, a t x t square per step). */
function line(img: RgbaImage, a: readonly [number, number], b: readonly [number, number], c: Rgb, t: number): void {
  let [x, y] = a;
  const [x2, y2] = b;
  const dx = Math.abs(x2 - x);
  const dy = -Math.abs(y2 - y);
  const sx = x < x2 ? 1 : -1;
  const sy = y < y2 ? 1 : -1;
  let err = dx + dy;
  const h = Math.floor(t / 2);
  for (;;) {
    fillRect(img, x - h, y - h, t, t, c);
    if (x === x2 && y === y2) return;
    const e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y += sy;
    }
  }
}

/** Draws the chart and writes it as a PNG atomically. */
export async function writeCurveChart(path: string, spec: CurveChartSpec): Promise<void> {
  const img = renderCurveChart(spec);
  await writePng(path, img.data, img.width, img.height);
}
