// One image reader for every command that takes pictures (detect, the DDIM-inverse
// annotator): PNG or JPEG, told apart by their magic bytes, not the file name (a photo
// saved as .png by a careless tool is still read). Anything else is refused with an
// InputError naming the file and what its first bytes say it is.
import { readFile } from 'node:fs/promises';
import { InputError } from '../gpu/errors.js';
import { decodeJpeg } from './jpeg_decode.js';
import { decodePng } from './png.js';
import { notRegularFile } from './regular_file.js';

export interface ImageFile {
  width: number;
  height: number;
  /** [height, width, 4] RGBA bytes (JPEG: alpha 255; PNG: its alpha, 255 when it has none). */
  rgba: Uint8Array;
  format: 'png' | 'jpeg';
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const ascii = (b: Uint8Array, from: number, to: number) => String.fromCharCode(...b.subarray(from, to));

/** 'png' or 'jpeg' from a file's first bytes, or a phrase saying what else it looks like
 *  ("a GIF image", "text", ...). */
export function sniffImage(head: Uint8Array): { format: 'png' | 'jpeg' } | { format: null; looksLike: string } {
  if (head.length >= 8 && PNG_SIGNATURE.every((b, i) => head[i] === b)) return { format: 'png' };
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return { format: 'jpeg' };
  const looks = (looksLike: string) => ({ format: null, looksLike }) as const;
  if (ascii(head, 0, 4) === 'GIF8') return looks('a GIF image');
  if (head[0] === 0x42 && head[1] === 0x4d) return looks('a BMP image');
  if (ascii(head, 0, 4) === 'RIFF' && ascii(head, 8, 12) === 'WEBP') return looks('a WebP image');
  if (ascii(head, 0, 4) === 'II*\0' || ascii(head, 0, 4) === 'MM\0*') return looks('a TIFF image');
  if (ascii(head, 4, 8) === 'ftyp') {
    const brand = ascii(head, 8, 12);
    return looks(/^(avi[fs])$/.test(brand) ? 'an AVIF image' : /^(hei[cxms]|mif1|msf1|hev[cx])$/.test(brand) ? 'a HEIF/HEIC image' : `an ISO media file (brand "${brand}")`);
  }
  if (ascii(head, 0, 5) === '%PDF-') return looks('a PDF document');
  if (head[0] === 0xff && head[1] === 0xd8) return looks('a damaged JPEG (FF D8 not followed by a marker)');
  if (head[0] === 0x89 && ascii(head, 1, 4) === 'PNG') return looks('a damaged PNG (its signature is cut or altered)');
  if (head.length > 0 && head.every((b) => b === 9 || b === 10 || b === 13 || (b >= 0x20 && b < 0x7f) || b >= 0x80)) return looks('not an image (it starts like text)');
  const hex = Array.from(head.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return looks(`not an image (no PNG or JPEG signature; it starts with ${hex})`);
}

/** A PNG or JPEG file as RGBA bytes. Every failure is an InputError that names the file. */
export async function readImageFile(path: string): Promise<ImageFile> {
  const why = notRegularFile(path);
  if (why) throw new InputError(`${path} ${why}; give a PNG or JPEG image`);
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new InputError(`${path}: cannot read the image (${(e as Error).message})`);
  }
  if (buf.length === 0) throw new InputError(`${path} is empty (0 bytes), not an image`);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const kind = sniffImage(bytes.subarray(0, 16));
  if (kind.format === null) {
    const what = kind.looksLike.startsWith('not an image') ? kind.looksLike : `${kind.looksLike}, not a PNG or JPEG`;
    throw new InputError(`${path} is ${what}; only PNG and JPEG images are read: convert it to PNG first`);
  }
  if (kind.format === 'png') {
    // IHDR: width and height are the big-endian words at bytes 16 and 20.
    if (buf.length >= 24 && (buf.readUInt32BE(16) === 0 || buf.readUInt32BE(20) === 0)) {
      throw new InputError(`${path} is a zero-size image (${buf.readUInt32BE(16)}x${buf.readUInt32BE(20)}); there is nothing in it`);
    }
    try {
      return { ...decodePng(buf), format: 'png' };
    } catch (e) {
      throw new InputError(`${path}: not a readable PNG (${(e as Error).message})`);
    }
  }
  try {
    return { ...decodeJpeg(bytes), format: 'jpeg' };
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    throw new InputError(`${path}: not a readable JPEG (${e.message.replace(/^JPEG: /, '')})`);
  }
}
