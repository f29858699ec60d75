// readImageFile: PNG and JPEG told apart by content (not name), everything else refused
// naming the file and what it looks like.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/gpu/errors.js';
import { readImageFile, sniffImage } from '../../src/io/image_file.js';
import { encodeJpeg } from '../../src/io/jpeg.js';
import { decodeJpeg } from '../../src/io/jpeg_decode.js';
import { encodePng } from '../../src/io/png.js';
import { rng } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'image-file-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function pixels(w: number, h: number, seed: number): Uint8Array {
  const r = rng(seed);
  const px = new Uint8Array(w * h * 4);
  for (let i = 0; i < px.length; i++) px[i] = i % 4 === 3 ? 255 : Math.floor(r() * 256);
  return px;
}

async function refusal(path: string): Promise<string> {
  const err = await readImageFile(path).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, path).toBeInstanceOf(InputError);
  const msg = (err as Error).message;
  expect(msg).toContain(path);
  return msg;
}

describe('readImageFile', () => {
  it('reads PNG exactly and JPEG as the decoder does, whatever the file is named', async () => {
    const [w, h] = [13, 9];
    const px = pixels(w, h, 1);
    const jpg = encodeJpeg(px, w, h, 90, { sampling: [2, 2] });
    const files = { 'a.png': encodePng(px, w, h), 'b.jpg': jpg, 'c.png': jpg, 'd.jpeg.bin': encodePng(px, w, h) };
    for (const [name, bytes] of Object.entries(files)) writeFileSync(join(tmp, name), bytes);
    const want = decodeJpeg(jpg);
    for (const name of ['a.png', 'd.jpeg.bin']) {
      const img = await readImageFile(join(tmp, name));
      expect(img.format).toBe('png');
      expect([img.width, img.height]).toEqual([w, h]);
      expect(img.rgba).toEqual(px);
    }
    for (const name of ['b.jpg', 'c.png']) {
      const img = await readImageFile(join(tmp, name));
      expect(img.format).toBe('jpeg');
      expect([img.width, img.height]).toEqual([w, h]);
      expect(img.rgba).toEqual(want.rgba);
    }
  });

  it('refuses other files naming the file and what it looks like', async () => {
    const cases: [string, Uint8Array | string, RegExp][] = [
      ['notes.png', 'hello, not an image\n', /is not an image \(it starts like text\); only PNG and JPEG/],
      ['anim.gif', 'GIF89a\x01\x00\x01\x00\x00\x00\x00;', /is a GIF image, not a PNG or JPEG/],
      ['pic.bmp', new Uint8Array([0x42, 0x4d, 0x3e, 0, 0, 0, 0, 0, 0, 0, 0x3e, 0, 0, 0, 0x28, 0]), /is a BMP image/],
      ['pic.webp', new Uint8Array([...Buffer.from('RIFF'), 1, 0, 0, 0, ...Buffer.from('WEBPVP8 ')]), /is a WebP image/],
      ['pic.heic', new Uint8Array([0, 0, 0, 24, ...Buffer.from('ftypheic'), 0, 0, 0, 0]), /is a HEIF\/HEIC image/],
      ['blob.bin', new Uint8Array([1, 2, 3, 0, 0xfe, 9, 9, 9]), /not an image \(no PNG or JPEG signature; it starts with 01 02 03 00 fe/],
      ['empty.jpg', '', /is empty \(0 bytes\)/],
      ['cut.jpg', new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1]), /not a readable JPEG \(truncated/],
    ];
    for (const [name, bytes, want] of cases) {
      const path = join(tmp, name);
      writeFileSync(path, bytes);
      expect(await refusal(path)).toMatch(want);
    }
    // A JPEG cut in its scan data, and a zero-size PNG header.
    const full = encodeJpeg(pixels(16, 16, 2), 16, 16, 80);
    writeFileSync(join(tmp, 'half.jpg'), full.subarray(0, full.length >> 1));
    expect(await refusal(join(tmp, 'half.jpg'))).toMatch(/half\.jpg: not a readable JPEG \(truncated/);
    const ihdr = Buffer.alloc(25);
    ihdr.writeUInt32BE(13, 0);
    ihdr.write('IHDR', 4);
    ihdr.writeUInt32BE(0, 8);
    ihdr.writeUInt32BE(16, 12);
    writeFileSync(join(tmp, 'zero.png'), Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ihdr]));
    expect(await refusal(join(tmp, 'zero.png'))).toMatch(/zero-size image \(0x16\)/);
    // Not files at all.
    expect(await refusal(join(tmp, 'missing.png'))).toMatch(/does not exist/);
    mkdirSync(join(tmp, 'folder.jpg'));
    expect(await refusal(join(tmp, 'folder.jpg'))).toMatch(/is not a regular file \(it is a folder\)/);
  });

  it('sniffImage needs the whole signature', () => {
    expect(sniffImage(new Uint8Array([0x89, 0x50, 0x4e, 0x47]))).toEqual({ format: null, looksLike: expect.stringMatching(/damaged PNG/) });
    expect(sniffImage(new Uint8Array([0xff, 0xd8, 0xff]))).toEqual({ format: 'jpeg' });
    expect(sniffImage(new Uint8Array([0xff, 0xd8, 0x00]))).toEqual({ format: null, looksLike: expect.stringMatching(/damaged JPEG/) });
  });
});
