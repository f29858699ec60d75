// Grouped bar chart as an RGBA picture (for the evaluation report): groups along x (the
// test sets), one bar per series in each group (DAAM / grounding module x seen / unseen),
// a y axis from 0 with ticks and grid lines, value labels on the bars, a legend and a
// title. Text uses the bitmap font of font.ts; everything is drawn at an integer scale,
// so the picture stays crisp. A null value draws no bar and "n/a" in its slot.
import { InputError } from '../../gpu/errors.js';
import { writePng } from '../png.js';
import { createImage, fillRect, type Rgb, type RgbaImage } from './canvas.js';
import { drawText, LINE_HEIGHT, textHeight, textWidth } from './font.js';

export interface BarSeries {
  name: string;
  color: Rgb;
  /** One value per group; null = not available (no bar). */
  values: ReadonlyArray<number | null>;
}

export interface BarChartSpec {
  title: string;
  /** Group labels, left to right; a label may wrap onto several lines at spaces. */
  groups: readonly string[];
  series: readonly BarSeries[];
  /** Y-axis caption (drawn above the axis). */
  yLabel?: string;
  /** Top of the y axis (default 1, or the largest value rounded up to a tick). */
  yMax?: number;
  /** Tick spacing on the y axis (default yMax / 5). */
  yStep?: number;
  /** Pixel scale of every length and of the font (default 2). */
  scale?: number;
  /** Digits of the value labels (default 2). */
  digits?: number;
}

const INK: Rgb = [33, 33, 33];
const GRID: Rgb = [225, 225, 225];
const MUTED: Rgb = [120, 120, 120];
const WHITE: Rgb = [255, 255, 255];

/** Splits `label` into lines no wider than `maxWidth` at text scale `s` (at spaces; a
 *  single word longer than that stays on its own line). */
function wrap(label: string, maxWidth: number, s: number): string[] {
  const lines: string[] = [];
  for (const word of label.split(/\s+/).filter((w) => w.length > 0)) {
    const last = lines.length ? lines[lines.length - 1] : undefined;
    if (last !== undefined && textWidth(`${last} ${word}`, s) <= maxWidth) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines.length ? lines : [''];
}

function checkSpec(spec: BarChartSpec): void {
  if (spec.groups.length === 0) throw new InputError('bar chart: no groups to draw');
  if (spec.series.length === 0) throw new InputError('bar chart: no series to draw');
  for (const s of spec.series) {
    if (s.values.length !== spec.groups.length) {
      throw new InputError(`bar chart: series '${s.name}' has ${s.values.length} values for ${spec.groups.length} groups`);
    }
    const bad = s.values.findIndex((v) => v !== null && !(Number.isFinite(v) && v >= 0));
    if (bad >= 0) throw new InputError(`bar chart: series '${s.name}' value ${bad} is ${s.values[bad]}; bars need finite values >= 0 (or null)`);
  }
  if (spec.scale !== undefined && !(Number.isInteger(spec.scale) && spec.scale >= 1 && spec.scale <= 8)) {
    throw new InputError(`bar chart: scale ${spec.scale} must be an integer in 1..8`);
  }
}

/** Draws the chart. */
export function renderBarChart(spec: BarChartSpec): RgbaImage {
  checkSpec(spec);
  const s = spec.scale ?? 2;
  const digits = spec.digits ?? 2;
  const largest = Math.max(0, ...spec.series.flatMap((x) => x.values.filter((v): v is number => v !== null)));
  let yMax = spec.yMax ?? 1;
  let yStep = spec.yStep ?? yMax / 5;
  if (spec.yMax === undefined && largest > yMax) {
    yStep = 10 ** Math.floor(Math.log10(largest / 5));
    if (largest / yStep > 10) yStep *= 2;
    if (largest / yStep > 10) yStep *= 2.5;
    yMax = Math.ceil(largest / yStep) * yStep;
  }
  if (!(yMax > 0 && yStep > 0)) throw new InputError(`bar chart: yMax ${yMax} and yStep ${yStep} must be positive`);

  // Layout in unscaled units (u), multiplied by s when drawn.
  const barW = 12;
  const barGap = 2;
  const groupPad = 10;
  const nSeries = spec.series.length;
  const groupW = nSeries * barW + (nSeries - 1) * barGap + 2 * groupPad;
  const ticks: number[] = [];
  for (let k = 0; k * yStep <= yMax * (1 + 1e-9); k++) ticks.push(k * yStep);
  // Fewest decimals that write every tick exactly (at least one below 1: "0.2", not ".2").
  let decimals = yMax <= 1 ? 1 : 0;
  while (decimals < 6 && ticks.some((t) => Math.abs(Math.round(t * 10 ** decimals) - t * 10 ** decimals) > 1e-6)) decimals++;
  const tickLabels = ticks.map((t) => t.toFixed(decimals));
  const axisLeft = Math.ceil(Math.max(...tickLabels.map((t) => textWidth(t, 1)))) + 8;
  const plotW = groupW * spec.groups.length;
  const plotH = 120;
  const labelLines = spec.groups.map((g) => wrap(g, groupW - 4, 1));
  const maxLines = Math.max(...labelLines.map((l) => l.length));

  // Legend: entries flow in rows under the title.
  const legendItems = spec.series.map((x) => ({ x, w: 8 + 3 + textWidth(x.name, 1) + 10 }));
  const width = axisLeft + plotW + 12;
  const legendRows: Array<typeof legendItems> = [[]];
  let rowW = 0;
  for (const it of legendItems) {
    if (rowW + it.w > width - axisLeft && legendRows[legendRows.length - 1].length) {
      legendRows.push([]);
      rowW = 0;
    }
    legendRows[legendRows.length - 1].push(it);
    rowW += it.w;
  }
  const titleLines = wrap(spec.title, width - 8, 1);
  const top = 6 + titleLines.length * LINE_HEIGHT + 4 + legendRows.length * LINE_HEIGHT + (spec.yLabel ? LINE_HEIGHT + 2 : 0) + 6;
  const height = top + plotH + 4 + maxLines * LINE_HEIGHT + 6;

  const img = createImage(width * s, height * s, WHITE);
  const rect = (x: number, y: number, w: number, h: number, c: Rgb) => fillRect(img, Math.round(x * s), Math.round(y * s), Math.round(w * s), Math.round(h * s), c);
  const text = (t: string, x: number, y: number, c: Rgb) => drawText(img, t, Math.round(x * s), Math.round(y * s), c, s);

  let y = 6;
  for (const line of titleLines) {
    text(line, (width - textWidth(line, 1)) / 2, y, INK);
    y += LINE_HEIGHT;
  }
  y += 4;
  for (const row of legendRows) {
    let x = axisLeft;
    for (const it of row) {
      rect(x, y, 8, 7, it.x.color);
      text(it.x.name, x + 11, y, INK);
      x += it.w;
    }
    y += LINE_HEIGHT;
  }
  if (spec.yLabel) text(spec.yLabel, 2, y + 2, MUTED);

  // Grid, ticks and the axes.
  const yOf = (v: number) => top + plotH - (Math.min(v, yMax) / yMax) * plotH;
  tickLabels.forEach((t, k) => {
    const ty = yOf(ticks[k]);
    rect(axisLeft, ty, plotW, 1 / s, GRID);
    rect(axisLeft - 3, ty, 3, 1 / s, INK);
    text(t, axisLeft - 5 - textWidth(t, 1), ty - textHeight(1) / 2 + 1, INK);
  });
  rect(axisLeft, top, 1 / s, plotH + 1 / s, INK);
  rect(axisLeft, top + plotH, plotW, 1 / s, INK);

  // Bars, value labels (a small scale-1 font inside the scaled picture), group labels.
  spec.groups.forEach((_, g) => {
    const gx = axisLeft + g * groupW + groupPad;
    spec.series.forEach((ser, k) => {
      const v = ser.values[g];
      const bx = gx + k * (barW + barGap);
      if (v === null) {
        const na = 'n/a';
        drawText(img, na, Math.round((bx + barW / 2) * s - textWidth(na, 1) / 2), Math.round((top + plotH - 2) * s - textHeight(1)), MUTED, 1);
        return;
      }
      const by = yOf(v);
      rect(bx, by, barW, top + plotH - by, ser.color);
      const label = v.toFixed(digits).replace(/^0\./, '.');
      drawText(img, label, Math.round((bx + barW / 2) * s - textWidth(label, 1) / 2), Math.round(by * s) - textHeight(1) - 2, INK, 1);
    });
    labelLines[g].forEach((line, i) => {
      const cx = axisLeft + g * groupW + groupW / 2;
      text(line, cx - textWidth(line, 1) / 2, top + plotH + 4 + i * LINE_HEIGHT, INK);
    });
  });
  return img;
}

/** Draws the chart and writes it as a PNG atomically. */
export async function writeBarChart(path: string, spec: BarChartSpec): Promise<void> {
  const img = renderBarChart(spec);
  await writePng(path, img.data, img.width, img.height);
}
