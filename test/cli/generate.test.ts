// `grounded-sd generate` option and output errors: each is refused in one clear line
// before any work (no model built, no step run), with the range, limit or path at fault.
// In-process through main(), output captured.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { decodePng } from '../../src/io/png.js';
import { capture, spawnCli } from './capture.js';

const tmp = mkdtempSync(join(tmpdir(), 'gsd-cli-generate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const gen = (...args: string[]) => capture(() => main(['generate', '--tiny', '--prompt', 'a red cube', '--out', join(tmp, 'out'), ...args]));

/** A usage error: exit 2, the message, then the usage. */
async function usage(args: string[], message: string): Promise<void> {
  const r = await gen(...args);
  expect(r.code, args.join(' ')).toBe(2);
  expect(r.err).toHaveLength(1);
  expect(r.err[0].split('\n')[0]).toBe(`grounded-sd generate: ${message}`);
  expect(r.err[0].split('\n')[1]).toMatch(/^usage: grounded-sd generate /);
  expect(r.progress).toBe('');
}

describe('generate: numeric options are range-checked', () => {
  it('negative numbers reach the range check (not parseArgs\' "ambiguous")', async () => {
    await usage(['--steps', '-1'], '--steps must be >= 1, got -1');
    await usage(['--steps=-1'], '--steps must be >= 1, got -1');
    await usage(['--seed', '-5'], '--seed must be >= 0, got -5');
    await usage(['--guidance', '-2.5'], '--guidance must be >= 0, got -2.5');
    await usage(['--height', '-8'], '--height must be >= 8, got -8');
  });

  it('every numeric option has finite, stated bounds', async () => {
    await usage(['--guidance', '1e308'], '--guidance must be <= 100 (classifier-free guidance scale; SD 1.x uses about 7.5), got 1e308');
    await usage(['--guidance', 'Infinity'], "--guidance must be a number in 0..100, got 'Infinity'");
    await usage(['--guidance', 'nan'], "--guidance must be a number in 0..100, got 'nan'");
    await usage(['--steps', '5000'], '--steps must be <= 1000 (SD 1.x schedulers have 1000 training timesteps), got 5000');
    await usage(['--steps', '2.5'], "--steps must be an integer in 1..1000, got '2.5'");
    await usage(['--steps', '0x10'], "--steps must be an integer in 1..1000, got '0x10'");
    await usage(['--steps', ''], "--steps must be an integer in 1..1000, got ''");
    await usage(['--seed', '4294967296'], '--seed must be <= 4294967295, got 4294967296');
    await usage(['--batch', '0'], '--batch must be >= 1, got 0');
    await usage(['--batch', '65'], '--batch must be <= 64, got 65');
    await usage(['--size', '50'], "--size must be a multiple of 8 (the VAE's 8x downsampling), got 50; try 48");
    await usage(['--width', '4'], '--width must be >= 8, got 4');
    await usage(['--scheduler', 'plms'], "--scheduler must be one of ddim, pndm, euler, dpm++2m, got 'plms'");
    await usage(['--dtype', 'bf16'], "--dtype must be one of f32, f16, got 'bf16'");
  });
});

// These create a GPU runtime; each runs in its own process (a runtime destroyed before
// another is created in the same process can crash Dawn, which no user command does).
describe('generate: sizes are checked against the adapter before anything is allocated', () => {
  for (const [args, pattern] of [
    [['--size', '100000'], /^grounded-sd generate: LimitError: generate: a 100000x100000 image \(batch 1\) does not fit .*: height 100000 is over the adapter's largest image side, maxTextureDimension2D \d+ \(and \d+ more limits\); the largest that fits at this aspect ratio is (\d+)x\1$/],
    [['--height', '8', '--width', '100000'], /^grounded-sd generate: LimitError: generate: a 8x100000 image \(batch 1\) does not fit .*: width 100000 is over the adapter's largest image side, maxTextureDimension2D (\d+); the largest that fits at this aspect ratio is 8x\1$/],
  ] as const) {
    it(args.join(' '), () => {
      const r = spawnCli(['generate', '--tiny', '--prompt', 'a red cube', '--out', join(tmp, 'out'), ...args]);
      expect(r.code).toBe(1);
      // One line, and nothing else: no model was built and no step ran.
      expect(r.stderr).toHaveLength(1);
      expect(r.stderr[0]).toMatch(pattern);
      expect(r.stdout).toEqual([]);
    });
  }
});

describe('generate: outputs are checked before any work', () => {
  it('--out that is a file, lies under a file, or whose PNG path is a folder', async () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    const cases: [string, string][] = [
      [file, `--out: ${file} is a file, so ${join(file, '0_0.png')} cannot be created under it; choose another --out`],
      [join(file, 'sub', 'dir'), `--out: ${file} is a file, so ${join(file, 'sub', 'dir', '0_0.png')} cannot be created under it; choose another --out`],
    ];
    const busy = join(tmp, 'busy');
    mkdirSync(join(busy, '0_1.png'), { recursive: true });
    cases.push([busy, `--out: ${join(busy, '0_1.png')} exists and is not a regular file, so it cannot be replaced; choose another --out`]);
    for (const [out, message] of cases) {
      const r = await capture(() => main(['generate', '--tiny', '--prompt', 'x', '--batch', '2', '--out', out]));
      expect(r.code, out).toBe(1);
      expect(r.err).toEqual([`grounded-sd generate: InputError: ${message}`]);
      expect(r.progress).toBe('');
    }
  });

  it('a valid small run still writes its PNGs (the checks pass what fits)', async () => {
    const out = join(tmp, 'fresh', 'nested');
    const r = await capture(() => main(['generate', '--tiny', '--prompt', 'a red cube', '--steps', '1', '--size', '16', '--seed', '3', '--out', out]));
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([join(out, '3_0.png')]);
    const png = decodePng(readFileSync(r.out[0]));
    expect([png.width, png.height]).toEqual([16, 16]);
  });

  it('--dtype f16 writes the f32 run\'s picture up to f16 rounding', async () => {
    const run = async (dtype: string) => {
      const out = join(tmp, `dtype-${dtype}`);
      const r = await capture(() => main(['generate', '--tiny', '--prompt', 'a red cube', '--steps', '2', '--size', '16', '--seed', '4', '--dtype', dtype, '--out', out]));
      expect(r.err).toEqual([]);
      expect(r.code).toBe(0);
      return decodePng(readFileSync(join(out, '4_0.png')));
    };
    const [a, b] = [await run('f32'), await run('f16')];
    expect([b.width, b.height]).toEqual([16, 16]);
    // The grounded chain's f16 bound (test/models/f16.test.ts): 2^-6 of the [0, 1] range,
    // 4 of 255 levels.
    let worst = 0;
    for (let i = 0; i < a.rgba.length; i++) worst = Math.max(worst, Math.abs(a.rgba[i] - b.rgba[i]));
    expect(worst).toBeLessThanOrEqual(4);
  });
});
