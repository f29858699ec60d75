// Pictures and label maps of a PASCAL VOC folder, brought to the dataset's square size
// (the 'ddim-inverse' path, voc_source.ts). Everything here runs on the host.
//
// Geometry (the same for the picture and its label map): the centred square of side
// min(W, H) is cut out (left/top offset floor((W - side) / 2), floor((H - side) / 2)),
// then resized to S x S:
//  - the picture with a separable triangle (bilinear) filter whose support widens by the
//    scale factor when shrinking (antialiased, as PIL's BILINEAR resize), pixel centres
//    aligned ((i + 0.5) * side / S - 0.5), then rounded to 8 bits, so the stored
//    image.png is exactly the picture the VAE encodes;
//  - the label map by nearest neighbour at pixel centres: output pixel i takes source
//    pixel floor((2i + 1) * side / (2S)) of the square (integer arithmetic).
import { InputError } from '../../gpu/errors.js';
import { readImageFile } from '../../io/image_file.js';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const isPng = (b: Uint8Array) => b.length >= 8 && PNG_MAGIC.every((v, i) => b[i] === v);
const isJpeg = (b: Uint8Array) => b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/** Width and height from a PNG's IHDR or a JPEG's SOF marker, without decoding. */
export function imageHeaderSize(bytes: Uint8Array, path: string): { width: number; height: number } {
  if (isPng(bytes)) {
    if (bytes.length < 24) throw new InputError(`${path}: the PNG is cut short (${bytes.length} bytes)`);
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return { width: v.getUint32(16), height: v.getUint32(20) };
  }
  if (isJpeg(bytes)) {
    let p = 2;
    while (p + 4 <= bytes.length) {
      if (bytes[p] !== 0xff) throw new InputError(`${path}: damaged JPEG (no marker at byte ${p})`);
      const m = bytes[p + 1];
      if (m === 0xff) {
        p++;
        continue;
      }
      if (m === 0xd8 || (m >= 0xd0 && m <= 0xd7) || m === 0x01) {
        p += 2;
        continue;
      }
      const len = (bytes[p + 2] << 8) | bytes[p + 3];
      // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
      if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
        if (p + 9 > bytes.length) break;
        return { height: (bytes[p + 5] << 8) | bytes[p + 6], width: (bytes[p + 7] << 8) | bytes[p + 8] };
      }
      if (m === 0xda || m === 0xd9) break;
      p += 2 + len;
    }
    throw new InputError(`${path}: the JPEG has no frame header (SOF) before its image data; the file is damaged`);
  }
  throw new InputError(`${path}: neither a PNG nor a JPEG (by its first bytes); give the picture as .jpg or .png`);
}

/** Decodes a picture (PNG or JPEG, io/image_file.ts) to RGBA: the one place the
 *  'ddim-inverse' path reads pictures. */
export async function readPicture(path: string): Promise<{ width: number; height: number; rgba: Uint8Array }> {
  const img = await readImageFile(path);
  return { width: img.width, height: img.height, rgba: img.rgba };
}

/** The centred square of a W x H picture: [left, top, side]. */
export function centerSquare(width: number, height: number): [number, number, number] {
  const side = Math.min(width, height);
  return [Math.floor((width - side) / 2), Math.floor((height - side) / 2), side];
}

/** Triangle-filter weights mapping `n` source samples to `m` outputs: per output, the
 *  first source index and the normalised weights. */
function triangleWeights(n: number, m: number): Array<{ first: number; w: Float64Array }> {
  const scale = n / m;
  const support = Math.max(1, scale);
  const out: Array<{ first: number; w: Float64Array }> = [];
  for (let i = 0; i < m; i++) {
    const centre = (i + 0.5) * scale;
    const lo = Math.max(0, Math.floor(centre - support));
    const hi = Math.min(n - 1, Math.ceil(centre + support));
    const w = new Float64Array(hi - lo + 1);
    let sum = 0;
    for (let j = lo; j <= hi; j++) {
      const v = Math.max(0, 1 - Math.abs((j + 0.5 - centre) / support));
      w[j - lo] = v;
      sum += v;
    }
    for (let k = 0; k < w.length; k++) w[k] /= sum;
    out.push({ first: lo, w });
  }
  return out;
}

/** The centred square of RGBA `rgba` (W x H) resized to S x S: RGBA bytes [S, S, 4]
 *  (alpha 255) and RGB in [0, 1] [3, S, S] (the same 8-bit values). */
export function squarePicture(rgba: Uint8Array, width: number, height: number, S: number): { rgba: Uint8Array; rgb: Float32Array } {
  const [left, top, side] = centerSquare(width, height);
  const wx = triangleWeights(side, S);
  // Rows first: [side rows, S cols, 3].
  const tmp = new Float64Array(side * S * 3);
  for (let y = 0; y < side; y++) {
    const row = (top + y) * width;
    for (let x = 0; x < S; x++) {
      const { first, w } = wx[x];
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = 0; k < w.length; k++) {
        const p = 4 * (row + left + first + k);
        r += w[k] * rgba[p];
        g += w[k] * rgba[p + 1];
        b += w[k] * rgba[p + 2];
      }
      const q = 3 * (y * S + x);
      tmp[q] = r;
      tmp[q + 1] = g;
      tmp[q + 2] = b;
    }
  }
  const outRgba = new Uint8Array(S * S * 4);
  const rgb = new Float32Array(3 * S * S);
  for (let y = 0; y < S; y++) {
    const { first, w } = wx[y];
    for (let x = 0; x < S; x++) {
      for (let c = 0; c < 3; c++) {
        let v = 0;
        for (let k = 0; k < w.length; k++) v += w[k] * tmp[3 * ((first + k) * S + x) + c];
        const byte = Math.min(255, Math.max(0, Math.round(v)));
        outRgba[4 * (y * S + x) + c] = byte;
        rgb[c * S * S + y * S + x] = byte / 255;
      }
      outRgba[4 * (y * S + x) + 3] = 255;
    }
  }
  return { rgba: outRgba, rgb };
}

/** The centred square of label map `labels` (W x H) resized to S x S by nearest
 *  neighbour at pixel centres. */
export function squareLabels(labels: Uint8Array, width: number, height: number, S: number): Uint8Array {
  const [left, top, side] = centerSquare(width, height);
  const src = Array.from({ length: S }, (_, i) => Math.floor(((2 * i + 1) * side) / (2 * S)));
  const out = new Uint8Array(S * S);
  for (let y = 0; y < S; y++) {
    const row = (top + src[y]) * width + left;
    for (let x = 0; x < S; x++) out[y * S + x] = labels[row + src[x]];
  }
  return out;
}
