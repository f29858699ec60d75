// `grounded-sd demo` in-process on the built-in tiny model: every file it promises exists
// and is a valid PNG of the right size, masks are binary, and result.json agrees with the
// files (class list = mask files, areas = counted pixels, sizes, no hashes for random
// weights). A second run gives the same bytes.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { decodePng } from '../../src/io/png.js';
import { capture, type Captured } from './capture.js';

const tmp = mkdtempSync(join(tmpdir(), 'gsd-cli-demo-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Area { pixels: number; fraction: number }
interface Result {
  format: string;
  engine: { name: string; version: string };
  prompt: string;
  seed: number;
  index: number;
  image: string;
  width: number;
  height: number;
  overlay: { file: string; scale: number };
  classes: Array<{ name: string; mask: string; area: Area }>;
  daam: Array<{ word: string; heatmap: string; mask: string; mask_area: Area; merge_indices: number[] }>;
  settings: Record<string, unknown>;
  timings_ms: Record<string, number>;
  model: { path: string; weights: unknown };
  grounding: { path: string; weights: unknown; config: { out_size: number } };
  adapter: { description: string };
  warnings: string[];
}

const png = (path: string) => decodePng(readFileSync(path));

/** Nonzero pixels of a grey 0/255 PNG, checking that it is binary and grey. */
function binaryArea(path: string, width: number, height: number): number {
  const p = png(path);
  expect([p.width, p.height], path).toEqual([width, height]);
  let on = 0;
  for (let i = 0; i < width * height; i++) {
    const [r, g, b, a] = p.rgba.subarray(i * 4, i * 4 + 4);
    expect(r === 0 || r === 255, `${path} pixel ${i} is ${r}`).toBe(true);
    expect([g, b, a]).toEqual([r, r, 255]);
    if (r) on++;
  }
  return on;
}

describe('grounded-sd demo (tiny model)', () => {
  let run: Captured;
  const out = join(tmp, 'demo');
  beforeAll(async () => {
    run = await capture(() => main(['demo', '--out', out]));
  });

  it('exits 0, prints the folder and says the weights are random and how to use real ones', () => {
    expect(run.err).toEqual([]);
    expect(run.code).toBe(0);
    const folder = join(out, '0_0');
    expect(run.out[0]).toBe(folder);
    const notice = run.out.slice(1).join('\n');
    expect(notice).toMatch(/random weights, so these pictures are noise/);
    expect(notice).toMatch(/--model \/path\/to\/sd15 --grounding \/path\/to\/grounding\.pth/);
    expect(notice).toMatch(/weights\/README\.md/);
    expect(run.progress).toMatch(/denoise 10\/10/);
  });

  it('writes image, masks, overlay, heat maps and result.json that agree with each other', () => {
    const dir = join(out, '0_0');
    const r = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as Result;
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(r.engine).toEqual({ name: 'grounded-sd', version: pkg.version });
    expect(r.prompt).toBe('a photograph of a dog and a cat');
    expect([r.seed, r.index]).toEqual([0, 0]);
    const [W, H] = [r.width, r.height];
    expect([W, H]).toEqual([64, 64]);
    expect(r.grounding.config.out_size).toBe(64);

    const image = png(join(dir, r.image));
    expect([image.width, image.height]).toEqual([W, H]);
    expect(image.rgba.some((v, i) => i % 4 !== 3 && v !== image.rgba[0])).toBe(true); // not a flat fill

    // Class list = mask files; areas = counted pixels.
    expect(r.classes.map((c) => c.name)).toEqual(['dog', 'cat']);
    expect(readdirSync(join(dir, 'masks')).sort()).toEqual(r.classes.map((c) => c.mask.replace('masks/', '')).sort());
    for (const c of r.classes) {
      const on = binaryArea(join(dir, c.mask), W, H);
      expect(c.area).toEqual({ pixels: on, fraction: on / (W * H) });
    }

    const overlay = png(join(dir, r.overlay.file));
    expect(overlay.width).toBe(W * r.overlay.scale);
    expect(overlay.height).toBeGreaterThan(H * r.overlay.scale); // the legend strip

    // DAAM: the classes first, then every other prompt word; heat maps and masks per word.
    expect(r.daam.map((d) => d.word)).toEqual(['dog', 'cat', 'a', 'photograph', 'of', 'and']);
    expect(readdirSync(join(dir, 'heatmaps')).sort()).toEqual(r.daam.map((d) => d.heatmap.replace('heatmaps/', '')).sort());
    expect(readdirSync(join(dir, 'daam_masks')).sort()).toEqual(r.daam.map((d) => d.mask.replace('daam_masks/', '')).sort());
    for (const d of r.daam) {
      const hm = png(join(dir, d.heatmap));
      expect([hm.width, hm.height]).toEqual([W, H]);
      const on = binaryArea(join(dir, d.mask), W, H);
      expect(d.mask_area).toEqual({ pixels: on, fraction: on / (W * H) });
    }
    expect(r.daam.find((d) => d.word === 'a')?.merge_indices).toEqual([1, 4, 7]);

    // Settings, timings, weights: random, so no hashes.
    expect(r.settings).toMatchObject({ mode: 'grounded', steps: 10, scheduler: 'ddim', feature_step: 1, batch_norm: 'official', threshold: 0.5, daam: true, daam_threshold: 0.4, dtype: 'f32', height: 64, width: 64 });
    for (const k of ['load_model', 'text', 'denoise', 'vae', 'grounding', 'daam', 'total', 'write']) expect(typeof r.timings_ms[k], k).toBe('number');
    expect(r.model).toEqual({ path: 'tiny', weights: 'random (built-in tiny model)' });
    expect(r.grounding).toMatchObject({ path: 'tiny', weights: 'random (built-in tiny model)' });
    expect(readFileSync(join(dir, 'result.json'), 'utf8')).not.toMatch(/sha256/);
    expect(r.adapter.description.length).toBeGreaterThan(0);
    expect(r.warnings).toEqual([]);
    // Nothing else in the folder (no temp files left behind).
    expect(readdirSync(dir).sort()).toEqual(['daam_masks', 'heatmaps', 'image.png', 'masks', 'overlay.png', 'result.json']);
  });

  it('the same seed writes the same image and masks', async () => {
    const again = join(tmp, 'again');
    const r2 = await capture(() => main(['demo', '--out', again]));
    expect(r2.code).toBe(0);
    for (const f of ['image.png', 'masks/dog.png', 'masks/cat.png', 'heatmaps/dog.png']) {
      expect(readFileSync(join(again, '0_0', f)).equals(readFileSync(join(out, '0_0', f))), f).toBe(true);
    }
  });

  it('refuses --model PATH without --grounding, and an --out under a file, before any work', async () => {
    const r = await capture(() => main(['demo', '--model', '/nonexistent/sd15', '--out', join(tmp, 'x')]));
    expect(r.code).toBe(2);
    expect(r.err[0].split('\n')[0]).toBe('grounded-sd demo: --model PATH needs --grounding CKPT (the grounding checkpoint for that model; see weights/README.md)');
    const file = join(out, '0_0', 'image.png');
    const bad = await capture(() => main(['demo', '--out', file]));
    expect(bad.code).toBe(1);
    expect(bad.err[0]).toMatch(/^grounded-sd demo: InputError: --out: .*image\.png is a file/);
    expect(bad.progress).toBe('');
    expect(existsSync(join(tmp, 'x'))).toBe(false);
  });
});
