// The detector fixtures' weight generator (golden/detector/README.md section 3) against an
// independent transcription in BigInt arithmetic (FNV-1a, lowbias32, the affine map in
// float64 and one rounding), the published FNV-1a test vectors, override centres in both
// spellings, and every check.weights.* head64 (bit for bit) and sum (relative 1e-9) of the
// fixture manifests, plus both generated input images.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/gpu/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { fnv1a32, generateTensor, generatedUniforms, generatedWeightSource, type GeneratedTensorSpec } from '../../src/models/detector/generated_weights.js';
import { goldenDir, runtime } from '../helpers.js';

const M32 = (1n << 32n) - 1n;

function fnvRef(bytes: Uint8Array): number {
  let h = 0x811c9dc5n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x01000193n) & M32;
  return Number(h);
}

function lowbiasRef(x0: number): number {
  let x = BigInt(x0) & M32;
  x ^= x >> 16n;
  x = (x * 0x7feb352dn) & M32;
  x ^= x >> 15n;
  x = (x * 0x846ca68bn) & M32;
  x ^= x >> 16n;
  return Number(x);
}

function valueRef(name: string, seed: number, i: number, c: number, a: number): number {
  const base = lowbiasRef((seed ^ lowbiasRef(fnvRef(new TextEncoder().encode(name)))) >>> 0);
  const u = Math.floor(lowbiasRef((base + i) % 2 ** 32) / 256) / 2 ** 24;
  return Math.fround(c + a * (2 * u - 1));
}

describe('detector weight generator', () => {
  it('fnv1a32 matches the FNV-1a test vectors and hashes UTF-8 bytes', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
    for (const name of ['backbone.body.conv1.weight', 'rpn.head.cls_logits.bias', 'é→名.weight']) {
      expect(fnv1a32(name)).toBe(fnvRef(new TextEncoder().encode(name)));
    }
  });

  it('values are fround(c_i + a * (2u - 1)) with override centres as a map or a list', () => {
    const seed = 7;
    const spec: GeneratedTensorSpec = { shape: [3, 5], dtype: 'F32', center: 0.25, halfwidth: 0.1 };
    const plain = generateTensor('x.weight', spec, seed);
    plain.forEach((v, i) => expect(v).toBe(valueRef('x.weight', seed, i, 0.25, 0.1)));
    const byMap = generateTensor('x.bias', { ...spec, override_centers: { 2: -3.5, 14: 11.25 } }, seed);
    const byList = generateTensor('x.bias', { ...spec, override_centers: Array.from({ length: 15 }, (_, i) => (i === 2 ? -3.5 : i === 14 ? 11.25 : 0.25)) }, seed);
    byMap.forEach((v, i) => expect(v).toBe(valueRef('x.bias', seed, i, i === 2 ? -3.5 : i === 14 ? 11.25 : 0.25, 0.1)));
    expect(Array.from(byList)).toEqual(Array.from(byMap));
    expect(() => generateTensor('x.bias', { ...spec, override_centers: { 15: 1 } }, seed)).toThrow(InputError);
    expect(() => generateTensor('x.bias', { ...spec, stream: 1 }, seed)).toThrow(/stream 1/);
  });

  it('a generated source loads only F32 tensors, on the GPU', async () => {
    const rt = await runtime();
    const src = generatedWeightSource({ seed: 0, tensors: { 'a.weight': { shape: [2, 3], dtype: 'F32', center: 1, halfwidth: 0.1 }, 'n.num_batches_tracked': { shape: [], dtype: 'I64' } } }, 'test');
    expect(src.names()).toEqual(['a.weight']);
    const t = await src.load(rt, 'a.weight', 'f32');
    expect(Array.from(await t.toArray())).toEqual(Array.from(generateTensor('a.weight', { shape: [2, 3], dtype: 'F32', center: 1, halfwidth: 0.1 }, 0)));
    await expect(src.load(rt, 'b.weight', 'f32')).rejects.toThrow(/no generated tensor 'b.weight'/);
  });

  for (const set of ['maskrcnn_v1', 'maskrcnn_v2']) {
    it(`${set}: check.weights.* head64 bit for bit, sums within 1e-9, input images exact`, async (ctx) => {
      const dir = goldenDir(`detector/${set}`);
      if (!dir) return ctx.skip();
      const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
        weights: { seed: number; tensors: Record<string, GeneratedTensorSpec> };
        inputs: { images: string[] };
      };
      const io = await SafetensorsFile.open(join(dir, 'io.safetensors'));
      try {
        let checked = 0;
        for (const [name, spec] of Object.entries(m.weights.tensors)) {
          const head = `check.weights.${name}.head64`;
          if (!io.tensors.has(head)) continue;
          const v = generateTensor(name, spec, m.weights.seed);
          const ref = await io.readF32(head);
          expect(Array.from(v.subarray(0, ref.length)), head).toEqual(Array.from(ref));
          const raw = await io.readRaw(`check.weights.${name}.sum`);
          const sumRef = new Float64Array(raw.buffer, raw.byteOffset, 1)[0];
          let s = 0;
          for (const x of v) s += x;
          expect(Math.abs(s - sumRef) / Math.abs(sumRef), `${name} sum`).toBeLessThanOrEqual(1e-9);
          checked++;
        }
        expect(checked).toBeGreaterThan(0);
        for (const name of m.inputs.images) {
          const ref = await io.readF32(name);
          expect(Array.from(generatedUniforms(name, m.weights.seed, ref.length)), name).toEqual(Array.from(ref));
        }
      } finally {
        await io.close();
      }
    });
  }
});
