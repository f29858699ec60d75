import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError, ShapeError } from '../../src/gpu/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { bicubic } from '../../src/nn/bicubic.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { bicubicRef, cubicKernel } from '../../src/ref/bicubic.js';
import { expectClose, goldenDir, randomTensor, runtime, TOL } from '../helpers.js';

// Tolerance: TOL.elementwise (rel L2 1e-6). Each output is a 16-term f32 sum whose taps are
// bit-identical to the reference's (same f32 source coordinates); weights and sums differ
// from float64 only by f32 rounding.

describe('bicubic', () => {
  it('Keys kernel: weights of any fractional offset sum to 1, W(0) = 1, W(1) = W(2) = 0', () => {
    for (const t of [0, 0.1, 0.25, 0.5, 0.75, 0.999]) {
      const s = cubicKernel(t + 1) + cubicKernel(t) + cubicKernel(1 - t) + cubicKernel(2 - t);
      expect(Math.abs(s - 1), `t=${t}`).toBeLessThan(1e-15);
    }
    expect([cubicKernel(0), cubicKernel(1), cubicKernel(-1), cubicKernel(2)]).toEqual([1, 0, 0, 0]);
    // Two independent hand values: W(0.5) = (A+2)/8 - (A+3)/4 + 1, W(1.5) = A(27/8 - 45/4 + 12 - 4).
    expect(cubicKernel(0.5)).toBeCloseTo(1.25 / 8 - 2.25 / 4 + 1, 15);
    expect(cubicKernel(1.5)).toBeCloseTo(-0.75 * (27 / 8 - 45 / 4 + 12 - 4), 15);
  });

  // Up (4->16 as DAAM's factor-4 maps), down, non-integer ratios, non-square, planes
  // smaller than the 4 taps (1 and 2 pixels: heavy border clamping), identity size.
  const cases: [number[], number, number, boolean][] = [
    [[2, 3, 4, 4], 16, 16, false],
    [[1, 2, 8, 8], 16, 16, false],
    [[2, 3, 5, 5], 7, 7, false],
    [[1, 3, 16, 12], 5, 7, false],
    [[1, 3, 5, 9], 7, 4, false],
    [[1, 2, 7, 7], 13, 11, false],
    [[2, 1, 1, 2], 5, 6, false],
    [[1, 2, 6, 5], 6, 5, false],
    [[1, 2, 5, 7], 9, 13, true],
    [[1, 2, 9, 6], 4, 1, true],
    [[1, 3, 3, 10], 1, 7, true],
  ];

  it.each(cases)('%j -> %ix%i (alignCorners %s) matches float64', async (shape, oh, ow, alignCorners) => {
    const rt = await runtime();
    const x = randomTensor(rt, shape, 11);
    const y = bicubic(x.t, { height: oh, width: ow, alignCorners });
    expect(y.shape).toEqual([shape[0], shape[1], oh, ow]);
    expect(y.dtype).toBe('f32');
    const ref = bicubicRef(x.data, shape, oh, ow, alignCorners);
    expectClose(await y.toArray(), ref, { label: `bicubic ${shape}->${oh}x${ow} ac=${alignCorners}`, relL2: TOL.elementwise });
    x.t.dispose();
    y.dispose();
  });

  it('the same size is the identity (align_corners false)', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [1, 2, 6, 5], 12);
    const y = await bicubic(x.t, { height: 6, width: 5 }).toArray();
    expectClose(y, x.data, { label: 'identity', relL2: 0 });
  });

  it('past the binding limit and 65535 workgroups: runs of planes, folded grid', async () => {
    const rt = await runtime();
    // Output [1,33,1024,1024] f32 = 132 MiB > 128 MiB: two runs of planes, and each run has
    // more than 65535 workgroups of 256 threads, so the grid folds into 2-D.
    const shape = [1, 33, 32, 32];
    const [oh, ow] = [1024, 1024];
    const x = randomTensor(rt, shape, 13);
    const yt = bicubic(x.t, { height: oh, width: ow });
    expect(yt.bytes).toBeGreaterThan(rt.limits.maxStorageBufferBindingSize);
    const perRun = Math.floor(rt.limits.maxStorageBufferBindingSize / (oh * ow * 4)) * oh * ow;
    expect(rt.grid(Math.ceil(perRun / 256))[1]).toBeGreaterThan(1);
    expectClose(await yt.toArray(), bicubicRef(x.data, shape, oh, ow), { label: 'bicubic 32->1024 x33', relL2: TOL.elementwise });
    x.t.dispose();
    yt.dispose();
  });

  it('rejects bad shapes, dtypes and options with the option named', async () => {
    const rt = await runtime();
    const x = randomTensor(rt, [1, 1, 2, 2], 14).t;
    expect(() => bicubic(randomTensor(rt, [2, 3, 4], 15).t, { height: 2, width: 2 })).toThrow(ShapeError);
    expect(() => bicubic(x, { height: 0, width: 3 })).toThrow(/height, width/);
    expect(() => bicubic(x, { height: 2.5, width: 3 })).toThrow(InputError);
    expect(() => bicubic(x, { height: 2, width: 3, alignCorners: 1 as unknown as boolean })).toThrow(/alignCorners/);
    expect(() => bicubic(Tensor.from(rt, new Int32Array(4), [1, 1, 2, 2], 'i32'), { height: 2, width: 2 })).toThrow(/f32/);
    expect(() => bicubic(Tensor.empty(rt, [1, 1, 0, 3], 'f32'), { height: 2, width: 2 })).toThrow(ShapeError);
  });

  it('empty batch gives an empty output', async () => {
    const rt = await runtime();
    const y = bicubic(Tensor.empty(rt, [0, 2, 3, 3], 'f32'), { height: 5, width: 4 });
    expect(y.shape).toEqual([0, 2, 5, 4]);
  });

  // DAAM's two bicubic uses in the grounded_tiny fixture (made with torch's own
  // F.interpolate): per-head layer maps -> latent size (clamped at 0, averaged), and word
  // maps -> image size (min-max normalised). Shapes and names from the manifest.
  it('reproduces the DAAM intermediates of the grounded_tiny fixture', async () => {
    const dir = goldenDir('grounded_tiny');
    if (!dir) return;
    const rt = await runtime();
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
      latent_size: [number, number];
      image_size: [number, number];
      tolerance: { max: number };
      daam: { layers: { io_sum: string }[]; words: { index: number }[] };
    };
    const tol = manifest.tolerance.max;
    const [lh, lw] = manifest.latent_size;
    const [ih, iw] = manifest.image_size;
    const io = await SafetensorsFile.open(join(dir, 'io.safetensors'));
    const relMax = (a: ArrayLike<number>, e: ArrayLike<number>) => {
      let d = 0;
      let m = 0;
      for (let i = 0; i < e.length; i++) {
        d = Math.max(d, Math.abs(a[i] - e[i]));
        m = Math.max(m, Math.abs(e[i]));
      }
      return d / m;
    };
    try {
      const tokenInfo = io.info('daam.token_maps');
      const mean = new Float64Array(tokenInfo.shape.reduce((a, b) => a * b, 1));
      let maps = 0;
      for (const layer of manifest.daam.layers) {
        const [heads, tokens, h, w] = io.info(layer.io_sum).shape;
        const x = Tensor.from(rt, await io.readF32(layer.io_sum), [heads, tokens, h, w]);
        const y = await bicubic(x, { height: lh, width: lw }).toArray();
        for (let i = 0; i < y.length; i++) mean[i % mean.length] += Math.max(y[i], 0);
        maps += heads;
      }
      for (let i = 0; i < mean.length; i++) mean[i] /= maps;
      const tokenRel = relMax(mean, await io.readF32('daam.token_maps'));
      expect(tokenRel, `daam.token_maps rel max ${tokenRel}`).toBeLessThanOrEqual(tol);

      for (const { index } of manifest.daam.words) {
        const latent = Tensor.from(rt, await io.readF32(`daam.word.${index}.latent`), [1, 1, lh, lw]);
        const img = await bicubic(latent, { height: ih, width: iw }).toArray();
        let lo = Infinity;
        let hi = -Infinity;
        for (const v of img) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
        const norm = Array.from(img, (v) => (v - lo) / (hi - lo + 1e-8));
        const rel = relMax(norm, await io.readF32(`daam.word.${index}.image`));
        expect(rel, `daam.word.${index}.image rel max ${rel}`).toBeLessThanOrEqual(tol);
      }
      // The float64 reference agrees with the same stored word image.
      const latent0 = await io.readF32(`daam.word.${manifest.daam.words[0].index}.latent`);
      const ref = bicubicRef(latent0, [1, 1, lh, lw], ih, iw);
      const lo = Math.min(...ref);
      const hi = Math.max(...ref);
      const refRel = relMax(Array.from(ref, (v) => (v - lo) / (hi - lo + 1e-8)), await io.readF32(`daam.word.${manifest.daam.words[0].index}.image`));
      expect(refRel).toBeLessThanOrEqual(tol);
    } finally {
      await io.close();
    }
  });
});
