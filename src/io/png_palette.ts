// Indexed-colour (palette) PNGs, the format of PASCAL VOC's SegmentationClass label maps:
// colour type 3, 8 bits per pixel, each pixel's byte is its class label and the PLTE chunk
// gives the colour a viewer shows. Readers that honour the palette (PIL's mode 'P',
// which VOC loaders use) get the label indices back unchanged.
//
// pngjs writes only colour types 0, 2, 4 and 6, so the chunks are written here (PNG
// specification, 2nd edition: signature, IHDR, PLTE, IDAT with zlib data of filter-0
// rows, IEND; CRC-32 over each chunk's type and data). Reading goes through pngjs, which
// expands a palette to RGBA; the colours are mapped back to indices through the palette.
import { deflateSync } from 'node:zlib';
import { InputError } from '../gpu/errors.js';
import { decodePng } from './png.js';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The PASCAL VOC colour map (VOCdevkit VOClabelcolormap.m): entry i spreads the bits of
 *  i over the channels, bit 3k+c of i going to bit 7-k of channel c. 0 is black
 *  (background), 255 is (224, 224, 192) (the 'void' border). [256 * 3] RGB bytes. */
export function vocPalette(): Uint8Array {
  const out = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    let c = i;
    const rgb = [0, 0, 0];
    for (let k = 0; k < 8; k++) {
      for (let ch = 0; ch < 3; ch++) rgb[ch] |= ((c >> ch) & 1) << (7 - k);
      c >>= 3;
    }
    out.set(rgb, i * 3);
  }
  return out;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (ISO-HDLC, reflected polynomial 0xEDB88320), as PNG chunks use it. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** A palette PNG of `indices` (row-major [height * width], one byte per pixel) with the
 *  [n * 3] RGB `palette` (n <= 256); every index must be below n. */
export function encodePalettePng(indices: Uint8Array, width: number, height: number, palette: Uint8Array): Buffer {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) throw new InputError(`palette PNG: size ${width}x${height} must be positive integers`);
  if (indices.length !== width * height) throw new InputError(`palette PNG: ${indices.length} pixels given for a ${width}x${height} image (${width * height})`);
  if (palette.length % 3 !== 0 || palette.length === 0 || palette.length > 768) throw new InputError(`palette PNG: the palette has ${palette.length} bytes, not 3 per entry for 1..256 entries`);
  const entries = palette.length / 3;
  const raw = Buffer.alloc(height * (width + 1));
  for (let y = 0; y < height; y++) {
    // Filter type 0 (None) per row: label maps are flat regions that deflate well as is.
    raw[y * (width + 1)] = 0;
    const row = indices.subarray(y * width, (y + 1) * width);
    for (let x = 0; x < width; x++) {
      if (row[x] >= entries) throw new InputError(`palette PNG: pixel (${x}, ${y}) has index ${row[x]}, the palette has ${entries} entries`);
    }
    raw.set(row, y * (width + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 3; // colour type: indexed
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method 0
  ihdr[12] = 0; // no interlace
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('PLTE', palette), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0))]);
}

/** The indices of a PNG whose colours are all entries of `palette` (each colour must
 *  appear in it once; the first entry wins a repeated colour). `where` names the file. */
export function decodePaletteIndices(buf: Buffer, palette: Uint8Array, where: string): { width: number; height: number; indices: Uint8Array } {
  let img: ReturnType<typeof decodePng>;
  try {
    img = decodePng(buf);
  } catch (e) {
    throw new InputError(`${where} is not a readable PNG (${(e as Error).message})`);
  }
  const lookup = new Map<number, number>();
  for (let i = palette.length / 3 - 1; i >= 0; i--) lookup.set((palette[3 * i] << 16) | (palette[3 * i + 1] << 8) | palette[3 * i + 2], i);
  const n = img.width * img.height;
  const indices = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    const key = (img.rgba[4 * p] << 16) | (img.rgba[4 * p + 1] << 8) | img.rgba[4 * p + 2];
    const k = lookup.get(key);
    if (k === undefined) {
      const [x, y] = [p % img.width, Math.floor(p / img.width)];
      throw new InputError(`${where}: pixel (${x}, ${y}) has colour (${img.rgba[4 * p]}, ${img.rgba[4 * p + 1]}, ${img.rgba[4 * p + 2]}), which is not in the label palette; the label map was edited or is not a label map`);
    }
    indices[p] = k;
  }
  return { width: img.width, height: img.height, indices };
}
