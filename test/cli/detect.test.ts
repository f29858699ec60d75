// `grounded-sd detect`: bad input refused with the file or option named (not an image, a
// truncated JPEG, a zero-size PNG, an empty file, --score outside [0, 1], no --model, a checkpoint
// that is not Mask R-CNN, one of the other architecture with its missing and unexpected
// names counted); and end to end on the full v1 model with the detector fixture's
// generated weights, written once as safetensors and once in torch.save's zip format (a
// minimal independent writer below): both give byte-identical results and overlays, and
// the results are well-formed COCO (RLE masks decode to the image size, boxes inside the
// image, scores >= --score, names = COCO's); a JPEG detects as the PNG of its decoded pixels.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { encodeJpeg } from '../../src/io/jpeg.js';
import { decodeJpeg } from '../../src/io/jpeg_decode.js';
import { encodePng, decodePng } from '../../src/io/png.js';
import { detectCommand } from '../../src/cli/detect.js';
import { runCommand } from '../../src/cli/main.js';
import { COCO_CATEGORIES } from '../../src/models/detector/categories.js';
import { generateTensor, type GeneratedTensorSpec } from '../../src/models/detector/generated_weights.js';
import { rleToMask } from '../../src/pipeline/annotate/rle.js';
import { goldenDir, rng } from '../helpers.js';
import { capture } from './capture.js';

const tmp = mkdtempSync(join(tmpdir(), 'detect-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const run = (args: string[]) => capture(() => runCommand('detect', detectCommand, args));

function randomPng(path: string, width: number, height: number, seed: number): void {
  const r = rng(seed);
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    // Smooth blobs rather than noise, so the image has structure to respond to.
    const x = i % width;
    const y = Math.floor(i / width);
    for (let c = 0; c < 3; c++) rgba[4 * i + c] = Math.round(127 + 100 * Math.sin((x + 7 * c) / (5 + 3 * c) + y / 9) + 20 * (r() - 0.5));
    rgba[4 * i + 3] = 255;
  }
  writeFileSync(path, encodePng(rgba, width, height));
}

// ---- A minimal torch.save (zip) writer: pickle protocol 2 and stored ZIP members. ----

const enc = new TextEncoder();
const u32le = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
const pstr = (s: string) => [0x58, ...u32le(enc.encode(s).length), ...enc.encode(s)];
const pint = (n: number) => (n < 256 ? [0x4b, n] : [0x4a, ...u32le(n)]);
const ptuple = (items: number[][]) => [0x28, ...items.flat(), 0x74];
const pglobal = (m: string, n: string) => [0x63, ...enc.encode(`${m}\n${n}\n`)];

/** {name: _rebuild_tensor_v2(persistent storage, 0, shape, stride, False, OrderedDict())}. */
function stateDictPickle(tensors: { name: string; shape: number[] }[]): Uint8Array {
  const items = tensors.flatMap((t, k) => {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    return [
      ...pstr(t.name),
      ...pglobal('torch._utils', '_rebuild_tensor_v2'),
      0x28, ...ptuple([pstr('storage'), pglobal('torch', 'FloatStorage'), pstr(String(k)), pstr('cpu'), pint(numel)]), 0x51,
      ...pint(0), ...ptuple(t.shape.map(pint)), ...ptuple(stride.map(pint)), 0x89,
      ...pglobal('collections', 'OrderedDict'), 0x29, 0x52, 0x74, 0x52,
    ];
  });
  return Uint8Array.from([0x80, 2, 0x7d, 0x28, ...items, 0x75, 0x2e]);
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function writeTorchZip(path: string, tensors: { name: string; shape: number[]; data: Float32Array }[]): void {
  const members: [string, Uint8Array][] = [
    ['archive/data.pkl', stateDictPickle(tensors)],
    ...tensors.map((t, k): [string, Uint8Array] => [`archive/data/${k}`, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)]),
    ['archive/version', enc.encode('3\n')],
    ['archive/byteorder', enc.encode('little')],
  ];
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of members) {
    const n = Buffer.from(name);
    const c = crc(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(c, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const dir = Buffer.alloc(46);
    dir.writeUInt32LE(0x02014b50, 0);
    dir.writeUInt16LE(20, 4);
    dir.writeUInt16LE(20, 6);
    dir.writeUInt32LE(c, 16);
    dir.writeUInt32LE(data.length, 20);
    dir.writeUInt32LE(data.length, 24);
    dir.writeUInt16LE(n.length, 28);
    dir.writeUInt32LE(offset, 42);
    parts.push(local, n, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    central.push(dir, n);
    offset += 30 + n.length + data.length;
  }
  const cdSize = central.reduce((s, b) => s + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(cdSize, 12);
  end.writeUInt32LE(offset, 16);
  writeFileSync(path, Buffer.concat([...parts, ...central, end]));
}

describe('detect: bad input', () => {
  const png = join(tmp, 'ok.png');
  randomPng(png, 20, 16, 1);
  const tinyCkpt = join(tmp, 'tiny.safetensors');

  it('refuses files that are not PNG images, naming the file', async () => {
    const text = join(tmp, 'notes.png');
    writeFileSync(text, 'hello, not an image\n');
    const jpeg = join(tmp, 'photo.jpg');
    writeFileSync(jpeg, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1]));
    const empty = join(tmp, 'empty.png');
    writeFileSync(empty, '');
    const zero = join(tmp, 'zero.png');
    const ihdr = Buffer.alloc(25);
    ihdr.writeUInt32BE(13, 0);
    ihdr.write('IHDR', 4);
    ihdr.writeUInt32BE(0, 8);
    ihdr.writeUInt32BE(16, 12);
    writeFileSync(zero, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ihdr]));
    for (const [file, want] of [[text, 'not an image'], [jpeg, 'not a readable JPEG (truncated'], [empty, 'is empty (0 bytes)'], [zero, 'zero-size image (0x16)']] as const) {
      const r = await run([png, file, '--model', tinyCkpt, '--out', join(tmp, 'out-bad')]);
      expect(r.code, file).toBe(1);
      expect(r.err.join('\n')).toContain(file);
      expect(r.err.join('\n')).toContain(want);
    }
  });

  it('--score outside [0, 1] and a missing --model are usage errors', async () => {
    for (const s of ['1.5', '-0.1', 'abc']) {
      const r = await run([png, '--model', tinyCkpt, '--score', s]);
      expect(r.code, s).toBe(2);
      expect(r.err.join('\n')).toContain('--score');
    }
    const r = await run([png]);
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toContain('--model CKPT is required');
  });

  it('a checkpoint that is not Mask R-CNN, and one of the other architecture, are refused with names', async () => {
    await writeSafetensors(tinyCkpt, { 'model.fc.weight': { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) } });
    const notDet = await run([png, '--model', tinyCkpt, '--out', join(tmp, 'out-bad')]);
    expect(notDet.code).toBe(1);
    expect(notDet.err.join('\n')).toContain('is not a torchvision Mask R-CNN checkpoint');
    const v1ish = join(tmp, 'v1ish.safetensors');
    await writeSafetensors(v1ish, { 'roi_heads.box_head.fc6.weight': { dtype: 'F32', shape: [1024, 12544], data: new Float32Array(1024 * 12544) } });
    const asV2 = await run([png, '--model', v1ish, '--arch', 'v2', '--out', join(tmp, 'out-bad')]);
    expect(asV2.code).toBe(1);
    const msg = asV2.err.join('\n');
    expect(msg).toMatch(/\d+ missing, 1 unexpected/);
    expect(msg).toContain('unexpected (1): roi_heads.box_head.fc6.weight');
    expect(msg).toContain('missing (');
    expect(msg).toContain('... and');
  });
});

describe('detect: end to end', () => {
  const dir = goldenDir('detector/maskrcnn_v1');
  it.skipIf(!dir)('v1 from .pth and from safetensors: identical COCO results and overlays', async () => {
    const m = JSON.parse(readFileSync(join(dir as string, 'manifest.json'), 'utf8')) as { weights: { seed: number; tensors: Record<string, GeneratedTensorSpec> } };
    const tensors = Object.entries(m.weights.tensors).map(([name, spec]) => ({ name, shape: spec.shape, data: generateTensor(name, spec, m.weights.seed) }));
    const st = join(tmp, 'maskrcnn_v1.safetensors');
    await writeSafetensors(st, Object.fromEntries(tensors.map((t) => [t.name, { dtype: 'F32' as const, shape: t.shape, data: t.data }])));
    const pth = join(tmp, 'maskrcnn_v1.pth');
    writeTorchZip(pth, tensors);
    const images = [join(tmp, 'a.png'), join(tmp, 'b.png')];
    randomPng(images[0], 64, 48, 2);
    randomPng(images[1], 40, 40, 3);
    const outs: Record<string, { results: string; overlays: Buffer[] }> = {};
    for (const [kind, ckpt] of [['safetensors', st], ['pth', pth]] as const) {
      const out = join(tmp, `out-${kind}`);
      const r = await run([...images, '--model', ckpt, '--score', '0.06', '--out', out, '--min-size', '96', '--max-size', '128']);
      expect(r.code, r.err.join('\n')).toBe(0);
      expect(r.progress).toContain('[2/2]');
      expect(r.out).toEqual([join(out, 'results.json'), join(out, 'images.json'), join(out, 'a.png'), join(out, 'b.png')]);
      outs[kind] = { results: readFileSync(join(out, 'results.json'), 'utf8'), overlays: ['a.png', 'b.png'].map((f) => readFileSync(join(out, f))) };
    }
    expect(outs.pth.results).toBe(outs.safetensors.results);
    outs.pth.overlays.forEach((b, i) => expect(b.equals(outs.safetensors.overlays[i])).toBe(true));

    const results = JSON.parse(outs.safetensors.results) as { image_id: number; category_id: number; category_name: string; bbox: number[]; score: number; segmentation: { size: [number, number]; counts: string } }[];
    expect(results.length).toBeGreaterThan(0);
    const sizes: Record<number, [number, number]> = { 1: [48, 64], 2: [40, 40] };
    for (const r of results) {
      const [h, w] = sizes[r.image_id];
      expect(r.segmentation.size).toEqual([h, w]);
      expect(rleToMask(r.segmentation, 'result').length).toBe(h * w);
      expect(r.score).toBeGreaterThanOrEqual(0.06);
      expect(r.category_name).toBe(COCO_CATEGORIES[r.category_id] === 'N/A' ? `N/A (${r.category_id})` : COCO_CATEGORIES[r.category_id]);
      const [x, y, bw, bh] = r.bbox;
      expect(x >= 0 && y >= 0 && bw >= 0 && bh >= 0 && x + bw <= w + 1e-3 && y + bh <= h + 1e-3, JSON.stringify(r.bbox)).toBe(true);
    }
    const imagesJson = JSON.parse(readFileSync(join(tmp, 'out-safetensors', 'images.json'), 'utf8')) as { images: { id: number; file_name: string }[]; categories: unknown[] };
    expect(imagesJson.images.map((i) => [i.id, i.file_name])).toEqual([[1, images[0]], [2, images[1]]]);
    expect(imagesJson.categories.length).toBe(80);
    const overlay = decodePng(outs.safetensors.overlays[0]);
    expect(overlay.width).toBeGreaterThanOrEqual(64);

    // A JPEG (4:2:0) detects exactly as the PNG of its decoded pixels.
    const src = decodePng(readFileSync(images[1]));
    const jpg = join(tmp, 'c.jpg');
    writeFileSync(jpg, encodeJpeg(src.rgba, src.width, src.height, 90, { sampling: [2, 2] }));
    const decoded = decodeJpeg(readFileSync(jpg));
    const asPng = join(tmp, 'c.png');
    writeFileSync(asPng, encodePng(decoded.rgba, decoded.width, decoded.height));
    const outJ = join(tmp, 'out-jpeg');
    const rj = await run([jpg, asPng, '--model', st, '--score', '0.06', '--out', outJ, '--min-size', '96', '--max-size', '128']);
    expect(rj.code, rj.err.join('\n')).toBe(0);
    const rows = JSON.parse(readFileSync(join(outJ, 'results.json'), 'utf8')) as { image_id: number }[];
    const strip = (id: number) => rows.filter((r) => r.image_id === id).map((r) => JSON.stringify({ ...r, image_id: 0 }));
    expect(strip(1).length).toBeGreaterThan(0);
    expect(strip(1)).toEqual(strip(2));
  });
});
