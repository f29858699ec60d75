// COCO polygon rasterisation with pycocotools' rule (common/maskApi.c rleFrPoly, cocoapi
// commit 8c9bcc3), so masks from COCO polygons match what pycocotools' annToMask gives.
//
// The rule, as maskApi.c computes it:
//  1. Upsample: every vertex is scaled by 5 and rounded, (int)(5 v + 0.5) (C truncation,
//     toward zero), and each edge is traced densely on that grid: the longer axis steps by
//     1, the other is (int)(start + slope * t + 0.5), the edge traced from its lower end
//     on the long axis (so the rounding does not depend on the edge's direction).
//  2. Column crossings: wherever the traced boundary moves from upsampled column u to
//     u +- 1 with min(u) = 5X + 2 (the boundary crosses the vertical line through pixel
//     column X's centre, x = X + 0.5 in pixel units), a toggle is placed at row
//     Y = ceil((min(v) + 0.5) / 5 - 0.5) clamped to [0, h], v the two points' upsampled
//     rows. Columns X outside [0, w - 1] are dropped.
//  3. Fill: in column-major pixel order (index X*h + Y) the mask flips at every toggle,
//     so pixel (X, Y) is inside when an odd number of toggles lie at or before it: the
//     even-odd rule along each column, sampled at pixel centres (x + 0.5, y + 0.5) of the
//     boundary digitised on the 1/5-pixel grid. Toggles at the same place cancel in pairs.
//     A toggle at Y = h (boundary below the image) flips from the next column's first
//     pixel on, which equals flipping past the end of column X (the column's toggles pair).
// A polygon list (one object in several parts) is the union of its parts, as
// pycocotools' annToRLE merges them.
//
// Difference from an exact even-odd test at pixel centres: the boundary is moved by the
// 1/5-pixel rounding of step 1 and the min() of step 2, so pixels whose centre lies
// within about 0.4 px of an edge can differ (test/pipeline/annotate.test.ts measures it).
import { InputError } from '../../gpu/errors.js';

const SCALE = 5;

/** C's (int) cast of a double: truncation toward zero. */
const cInt = (v: number): number => Math.trunc(v);

/** Row-major [h * w] mask (1 inside) of one polygon [x0, y0, x1, y1, ...] in pixel units. */
export function rasterisePolygon(xy: readonly number[], h: number, w: number): Uint8Array {
  const k = xy.length / 2;
  const x = new Array<number>(k + 1);
  const y = new Array<number>(k + 1);
  for (let j = 0; j < k; j++) {
    x[j] = cInt(SCALE * xy[2 * j] + 0.5);
    y[j] = cInt(SCALE * xy[2 * j + 1] + 0.5);
  }
  x[k] = x[0];
  y[k] = y[0];

  // Step 1: the dense boundary, edge after edge (each edge includes both its ends).
  const u: number[] = [];
  const v: number[] = [];
  for (let j = 0; j < k; j++) {
    let xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const dx = Math.abs(xe - xs);
    const dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      [xs, xe] = [xe, xs];
      [ys, ye] = [ye, ys];
    }
    if (dx >= dy) {
      // dx = dy = 0 (a repeated vertex) gives one point whose row is NaN; its column
      // equals its neighbours', so it never makes a crossing (as in maskApi.c).
      const s = (ye - ys) / dx;
      for (let d = 0; d <= dx; d++) {
        const t = flip ? dx - d : d;
        u.push(t + xs);
        v.push(cInt(ys + s * t + 0.5));
      }
    } else {
      const s = (xe - xs) / dy;
      for (let d = 0; d <= dy; d++) {
        const t = flip ? dy - d : d;
        v.push(t + ys);
        u.push(cInt(xs + s * t + 0.5));
      }
    }
  }

  // Step 2: toggles where the boundary crosses a pixel column's centre line.
  const toggles = new Uint8Array(h * w + 1);
  for (let j = 1; j < u.length; j++) {
    if (u[j] === u[j - 1]) continue;
    const xd = (Math.min(u[j], u[j - 1]) + 0.5) / SCALE - 0.5;
    if (Math.floor(xd) !== xd || xd < 0 || xd > w - 1) continue;
    let yd = (Math.min(v[j], v[j - 1]) + 0.5) / SCALE - 0.5;
    if (yd < 0) yd = 0;
    else if (yd > h) yd = h;
    yd = Math.ceil(yd);
    toggles[xd * h + yd] ^= 1;
  }

  // Step 3: parity fill in column-major order, written row-major.
  const out = new Uint8Array(h * w);
  let inside = 0;
  for (let p = 0; p < h * w; p++) {
    inside ^= toggles[p];
    if (inside) {
      const col = Math.floor(p / h);
      out[(p - col * h) * w + col] = 1;
    }
  }
  return out;
}

/** Checks one polygon's coordinate list. */
export function checkPolygon(poly: unknown, where: string): number[] {
  if (!Array.isArray(poly) || poly.length < 6 || poly.length % 2 !== 0) {
    const n = Array.isArray(poly) ? `${poly.length} numbers` : typeof poly;
    throw new InputError(`${where}: a polygon must be a list [x0, y0, x1, y1, ...] of at least 3 points (6 numbers, an even count), got ${n}`);
  }
  const bad = poly.findIndex((c) => typeof c !== 'number' || !Number.isFinite(c));
  if (bad >= 0) throw new InputError(`${where}: polygon coordinate ${bad} is ${JSON.stringify(poly[bad])}, not a finite number`);
  return poly as number[];
}

/** Union of the masks of several polygons (one COCO object in parts), row-major [h * w]. */
export function rasterisePolygons(polys: readonly (readonly number[])[], h: number, w: number): Uint8Array {
  const out = new Uint8Array(h * w);
  for (const p of polys) {
    const m = rasterisePolygon(p, h, w);
    for (let i = 0; i < out.length; i++) out[i] |= m[i];
  }
  return out;
}
