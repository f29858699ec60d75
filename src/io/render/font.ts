// A small hand-drawn bitmap font for labels and legends: 5x8 glyphs (rows 0-6 above the
// baseline, row 7 for descenders) in a 6x9 cell, drawn at integer scales. Each glyph is
// eight groups of five pixels, '#' on, '.' off, top row first. Characters outside the
// table are drawn without their accents when that finds a glyph ("café" -> "cafe"), and
// as a hollow box otherwise, so no label ever disappears silently.
import type { Rgb, RgbaImage } from './canvas.js';
import { blendPixel } from './canvas.js';

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 8;
/** Horizontal advance per character (glyph + one blank column). */
export const ADVANCE = 6;
/** Line height (glyph + one blank row). */
export const LINE_HEIGHT = 9;

/** The glyph drawn for characters the table lacks. */
export const MISSING = '##### #...# #...# #...# #...# #...# ##### .....';

export const GLYPHS: Readonly<Record<string, string>> = {
  ' ': '..... ..... ..... ..... ..... ..... ..... .....',
  a: '..... ..... .###. ....# .#### #...# .#### .....',
  b: '#.... #.... #.##. ##..# #...# #...# ####. .....',
  c: '..... ..... .###. #.... #.... #...# .###. .....',
  d: '....# ....# .##.# #..## #...# #...# .#### .....',
  e: '..... ..... .###. #...# ##### #.... .###. .....',
  f: '..##. .#..# .#... ###.. .#... .#... .#... .....',
  g: '..... ..... .#### #...# #...# .#### ....# .###.',
  h: '#.... #.... #.##. ##..# #...# #...# #...# .....',
  i: '..#.. ..... .##.. ..#.. ..#.. ..#.. .###. .....',
  j: '...#. ..... ..##. ...#. ...#. ...#. #..#. .##..',
  k: '#.... #.... #..#. #.#.. ##... #.#.. #..#. .....',
  l: '.##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###. .....',
  m: '..... ..... ##.#. #.#.# #.#.# #...# #...# .....',
  n: '..... ..... #.##. ##..# #...# #...# #...# .....',
  o: '..... ..... .###. #...# #...# #...# .###. .....',
  p: '..... ..... ####. #...# #...# ####. #.... #....',
  q: '..... ..... .##.# #..## #...# .#### ....# ....#',
  r: '..... ..... #.##. ##..# #.... #.... #.... .....',
  s: '..... ..... .###. #.... .###. ....# ####. .....',
  t: '.#... .#... ###.. .#... .#... .#..# ..##. .....',
  u: '..... ..... #...# #...# #...# #..## .##.# .....',
  v: '..... ..... #...# #...# #...# .#.#. ..#.. .....',
  w: '..... ..... #...# #...# #.#.# #.#.# .#.#. .....',
  x: '..... ..... #...# .#.#. ..#.. .#.#. #...# .....',
  y: '..... ..... #...# #...# #...# .#### ....# .###.',
  z: '..... ..... ##### ...#. ..#.. .#... ##### .....',
  A: '.###. #...# #...# ##### #...# #...# #...# .....',
  B: '####. #...# #...# ####. #...# #...# ####. .....',
  C: '.###. #...# #.... #.... #.... #...# .###. .....',
  D: '###.. #..#. #...# #...# #...# #..#. ###.. .....',
  E: '##### #.... #.... ####. #.... #.... ##### .....',
  F: '##### #.... #.... ####. #.... #.... #.... .....',
  G: '.###. #...# #.... #.### #...# #...# .#### .....',
  H: '#...# #...# #...# ##### #...# #...# #...# .....',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###. .....',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##.. .....',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...# .....',
  L: '#.... #.... #.... #.... #.... #.... ##### .....',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...# .....',
  N: '#...# #...# ##..# #.#.# #..## #...# #...# .....',
  O: '.###. #...# #...# #...# #...# #...# .###. .....',
  P: '####. #...# #...# ####. #.... #.... #.... .....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.# .....',
  R: '####. #...# #...# ####. #.#.. #..#. #...# .....',
  S: '.#### #.... #.... .###. ....# ....# ####. .....',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. .....',
  U: '#...# #...# #...# #...# #...# #...# .###. .....',
  V: '#...# #...# #...# #...# #...# .#.#. ..#.. .....',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#. .....',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...# .....',
  Y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.. .....',
  Z: '##### ....# ...#. ..#.. .#... #.... ##### .....',
  0: '.###. #...# #..## #.#.# ##..# #...# .###. .....',
  1: '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###. .....',
  2: '.###. #...# ....# ...#. ..#.. .#... ##### .....',
  3: '##### ...#. ..#.. ...#. ....# #...# .###. .....',
  4: '...#. ..##. .#.#. #..#. ##### ...#. ...#. .....',
  5: '##### #.... ####. ....# ....# #...# .###. .....',
  6: '..##. .#... #.... ####. #...# #...# .###. .....',
  7: '##### ....# ...#. ..#.. .#... .#... .#... .....',
  8: '.###. #...# #...# .###. #...# #...# .###. .....',
  9: '.###. #...# #...# .#### ....# ...#. .##.. .....',
  '.': '..... ..... ..... ..... ..... .##.. .##.. .....',
  ',': '..... ..... ..... ..... .##.. .##.. ..#.. .#...',
  ':': '..... .##.. .##.. ..... .##.. .##.. ..... .....',
  ';': '..... .##.. .##.. ..... .##.. .##.. ..#.. .#...',
  '-': '..... ..... ..... ##### ..... ..... ..... .....',
  _: '..... ..... ..... ..... ..... ..... ##### .....',
  '/': '..... ....# ...#. ..#.. .#... #.... ..... .....',
  '\\': '..... #.... .#... ..#.. ...#. ....# ..... .....',
  '%': '##... ##..# ...#. ..#.. .#... #..## ...## .....',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#. .....',
  ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#... .....',
  '[': '.###. .#... .#... .#... .#... .#... .###. .....',
  ']': '.###. ...#. ...#. ...#. ...#. ...#. .###. .....',
  "'": '..#.. ..#.. .#... ..... ..... ..... ..... .....',
  '"': '.#.#. .#.#. .#.#. ..... ..... ..... ..... .....',
  '!': '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.. .....',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#.. .....',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. ..... .....',
  '=': '..... ..... ##### ..... ##### ..... ..... .....',
  '#': '.#.#. .#.#. ##### .#.#. ##### .#.#. .#.#. .....',
  '&': '.##.. #..#. #.#.. .#... #.#.# #..#. .##.# .....',
  '*': '..... ..#.. #.#.# .###. #.#.# ..#.. ..... .....',
  '<': '...#. ..#.. .#... #.... .#... ..#.. ...#. .....',
  '>': '.#... ..#.. ...#. ....# ...#. ..#.. .#... .....',
  '~': '..... ..... .#... #.#.# ...#. ..... ..... .....',
};

/** Parsed glyphs: GLYPH_HEIGHT rows of GLYPH_WIDTH booleans. */
const BITMAPS = new Map<string, boolean[][]>();

function parse(spec: string): boolean[][] {
  const rows = spec.split(' ');
  if (rows.length !== GLYPH_HEIGHT || rows.some((r) => r.length !== GLYPH_WIDTH || /[^#.]/.test(r))) {
    throw new Error(`font: malformed glyph '${spec}'`);
  }
  return rows.map((r) => [...r].map((c) => c === '#'));
}

for (const [ch, spec] of Object.entries(GLYPHS)) BITMAPS.set(ch, parse(spec));
const MISSING_BITMAP = parse(MISSING);

/** The table key drawn for `ch` (itself, its unaccented base letter, or null: the box). */
export function glyphKey(ch: string): string | null {
  if (BITMAPS.has(ch)) return ch;
  const base = ch.normalize('NFD').replace(/\p{M}/gu, '');
  return base.length === 1 && BITMAPS.has(base) ? base : null;
}

function bitmap(ch: string): boolean[][] {
  const key = glyphKey(ch);
  return key === null ? MISSING_BITMAP : (BITMAPS.get(key) as boolean[][]);
}

/** Width in pixels of `text` at `scale` (no trailing blank column). */
export function textWidth(text: string, scale = 1): number {
  const n = [...text].length;
  return n === 0 ? 0 : (n * ADVANCE - 1) * scale;
}

/** Height in pixels of one line at `scale` (the glyph, descenders included). */
export function textHeight(scale = 1): number {
  return GLYPH_HEIGHT * scale;
}

/** Draws `text` with its top-left corner at (x, y), each font pixel a scale x scale square.
 *  Returns how many canvas pixels were set (clipped ones not counted). */
export function drawText(img: RgbaImage, text: string, x: number, y: number, color: Rgb, scale = 1): number {
  let drawn = 0;
  let cx = x;
  for (const ch of text) {
    const rows = bitmap(ch);
    for (let r = 0; r < GLYPH_HEIGHT; r++) {
      for (let c = 0; c < GLYPH_WIDTH; c++) {
        if (!rows[r][c]) continue;
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) {
            const px = cx + c * scale + dx;
            const py = y + r * scale + dy;
            if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
            blendPixel(img, px, py, color);
            drawn++;
          }
        }
      }
    }
    cx += ADVANCE * scale;
  }
  return drawn;
}

/** `text` cut to at most `maxWidth` pixels at `scale`, ending in '~' when it was cut. */
export function fitText(text: string, maxWidth: number, scale = 1): string {
  if (textWidth(text, scale) <= maxWidth) return text;
  const chars = [...text];
  let n = chars.length - 1;
  while (n > 0 && textWidth(`${chars.slice(0, n).join('')}~`, scale) > maxWidth) n--;
  return n > 0 ? `${chars.slice(0, n).join('')}~` : '';
}
