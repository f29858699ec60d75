// PNG output: images [B, 3, H, W] in [0, 1] and masks [H, W] in {0, 1} or [0, 1], written
// atomically (temp file in the same folder, then rename) so a crash never leaves a
// half-written file where a finished one was expected.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PNG } from 'pngjs';
import { InputError } from '../gpu/errors.js';
import { writeFileAtomic } from './atomic.js';

/** RGBA bytes of one image from CHW float data in [0, 1] (clamped, rounded). */
export function chwToRgba(data: Float32Array, offset: number, channels: number, height: number, width: number): Uint8Array {
  if (channels !== 1 && channels !== 3) throw new InputError(`an image needs 1 or 3 channels, got ${channels}`);
  const px = height * width;
  const out = new Uint8Array(px * 4);
  for (let i = 0; i < px; i++) {
    for (let c = 0; c < 3; c++) {
      const v = data[offset + (channels === 3 ? c : 0) * px + i];
      out[i * 4 + c] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
    out[i * 4 + 3] = 255;
  }
  return out;
}

export function encodePng(rgba: Uint8Array, width: number, height: number): Buffer {
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength);
  return PNG.sync.write(png);
}

export function decodePng(buf: Buffer): { width: number; height: number; rgba: Uint8Array } {
  const png = PNG.sync.read(buf);
  return { width: png.width, height: png.height, rgba: new Uint8Array(png.data) };
}

export async function writePng(path: string, rgba: Uint8Array, width: number, height: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, encodePng(rgba, width, height));
}

/** Colour overlay of binary masks on an image (RGBA in, RGBA out), one colour per mask. */
export function overlayMasks(rgba: Uint8Array, masks: Uint8Array[], alpha = 0.5): Uint8Array {
  const palette = [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60]];
  const out = Uint8Array.from(rgba);
  masks.forEach((m, k) => {
    const col = palette[k % palette.length];
    for (let i = 0; i < m.length; i++) {
      if (!m[i]) continue;
      for (let c = 0; c < 3; c++) out[i * 4 + c] = Math.round((1 - alpha) * out[i * 4 + c] + alpha * col[c]);
    }
  });
  return out;
}
