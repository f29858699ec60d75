// A small ZIP reader for torch.save archives (and any plain ZIP): the end-of-central-
// directory record (ZIP64 too: SD v1 .ckpt archives exceed 4 GiB), the central directory,
// local headers, stored and deflated entries. Nothing is read up front except the central
// directory; entries are read by offset from the open file, so a 7 GB checkpoint costs
// only the bytes asked for. Layout per APPNOTE.TXT 6.3 (sections 4.3.7, 4.3.12, 4.3.14-16,
// 4.5.3). torch.save writes stored (method 0) entries with a data descriptor and pads
// local extra fields so that tensor data starts 64-byte aligned.
import { open as openFile, stat, type FileHandle } from 'node:fs/promises';
import * as zlib from 'node:zlib';
import { WeightError } from '../gpu/errors.js';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const U32_MAX = 0xffffffff;

/** Reads `into.byteLength` bytes at `position`; a short file is a truncation error naming `path`. */
export async function readAt(fh: FileHandle, into: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const { bytesRead } = await fh.read(into, done, into.byteLength - done, position + done);
    if (bytesRead === 0) throw new WeightError(`${path}: unexpected end of file at byte ${position + done}; the file is truncated`);
    done += bytesRead;
  }
}

/** Opens `path` for reading after checking that it is a regular file: opening a FIFO
 *  blocks until a writer appears (a hang, not an error). */
export async function openRegularFile(path: string): Promise<FileHandle> {
  const st = await stat(path).catch((err: Error) => {
    throw new WeightError(`cannot open ${path}: ${err.message}`);
  });
  if (!st.isFile()) throw new WeightError(`${path} is not a regular file (it is ${st.isDirectory() ? 'a folder' : 'a pipe, socket or device'}); expected a checkpoint file`);
  try {
    return await openFile(path, 'r');
  } catch (err) {
    throw new WeightError(`cannot open ${path}: ${(err as Error).message}`);
  }
}

let crcTable: Uint32Array | null = null;

/** CRC-32 (IEEE, as ZIP uses): zlib's when this Node has it (20.15+), else a table. */
export function crc32(data: Uint8Array, prev = 0): number {
  const native = (zlib as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
  if (typeof native === 'function') return native(data, prev);
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~prev >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

function u64(buf: Buffer, at: number, what: string, path: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new WeightError(`${path}: ZIP ${what} ${v} is beyond 2^53; the archive is corrupt`);
  return Number(v);
}

export class ZipReader {
  private readonly dataStarts = new Map<string, number>();
  private inflated: { name: string; data: Uint8Array } | null = null;

  private constructor(
    readonly path: string,
    readonly size: number,
    readonly entries: Map<string, ZipEntry>,
    private readonly fh: FileHandle,
  ) {}

  /** Opens `path` and reads its central directory. */
  static async open(path: string): Promise<ZipReader> {
    const fh = await openRegularFile(path);
    try {
      const size = (await fh.stat()).size;
      const entries = await readCentralDirectory(fh, size, path);
      return new ZipReader(path, size, entries, fh);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (!e) throw new WeightError(`${this.path}: the archive has no entry '${name}'`);
    return e;
  }

  /** File offset of the entry's first data byte (from its local header, which may carry
   *  a different extra field than the central directory). */
  async dataStart(e: ZipEntry): Promise<number> {
    const known = this.dataStarts.get(e.name);
    if (known !== undefined) return known;
    const head = Buffer.alloc(30);
    await readAt(this.fh, head, e.localHeaderOffset, this.path);
    if (head.readUInt32LE(0) !== SIG_LOCAL) {
      throw new WeightError(`${this.path}: entry '${e.name}' has no local header at byte ${e.localHeaderOffset}; the archive is corrupt`);
    }
    const start = e.localHeaderOffset + 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
    if (start + e.compressedSize > this.size) {
      throw new WeightError(`${this.path}: entry '${e.name}' needs bytes up to ${start + e.compressedSize} but the file has ${this.size}; the file is truncated`);
    }
    this.dataStarts.set(e.name, start);
    return start;
  }

  /** The whole entry, inflated if needed, with its CRC-32 checked. */
  async read(name: string): Promise<Uint8Array> {
    const e = this.entry(name);
    const raw = new Uint8Array(e.compressedSize);
    await readAt(this.fh, raw, await this.dataStart(e), this.path);
    const data = e.method === 0 ? raw : this.inflate(e, raw);
    if (crc32(data) !== e.crc32) {
      throw new WeightError(`${this.path}: entry '${name}' fails its CRC-32 check (stored ${e.crc32.toString(16)}, computed ${crc32(data).toString(16)}); the file is corrupt`);
    }
    return data;
  }

  /** `length` bytes of the (uncompressed) entry from `offset`, in a fresh buffer. Stored
   *  entries are read in place; deflated ones are inflated once and kept until another
   *  deflated entry is asked for. */
  async readRange(name: string, offset: number, length: number): Promise<Uint8Array> {
    const e = this.entry(name);
    if (offset < 0 || length < 0 || offset + length > e.size) {
      throw new WeightError(`${this.path}: bytes [${offset}, ${offset + length}) lie outside entry '${name}' (${e.size} bytes); the archive is corrupt`);
    }
    if (e.method === 0) {
      const out = new Uint8Array(length);
      await readAt(this.fh, out, (await this.dataStart(e)) + offset, this.path);
      return out;
    }
    if (this.inflated?.name !== name) this.inflated = { name, data: await this.read(name) };
    return this.inflated.data.slice(offset, offset + length);
  }

  private inflate(e: ZipEntry, raw: Uint8Array): Uint8Array {
    if (e.method !== 8) {
      throw new WeightError(`${this.path}: entry '${e.name}' uses ZIP compression method ${e.method}; only stored (0) and deflate (8) are supported`);
    }
    let out: Buffer;
    try {
      out = zlib.inflateRawSync(raw);
    } catch (err) {
      throw new WeightError(`${this.path}: entry '${e.name}' does not inflate (${(err as Error).message}); the file is corrupt`);
    }
    if (out.byteLength !== e.size) {
      throw new WeightError(`${this.path}: entry '${e.name}' inflates to ${out.byteLength} bytes, the directory says ${e.size}; the file is corrupt`);
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  async close(): Promise<void> {
    this.inflated = null;
    await this.fh.close();
  }
}

async function readCentralDirectory(fh: FileHandle, size: number, path: string): Promise<Map<string, ZipEntry>> {
  // The EOCD record is 22 bytes plus a comment of at most 65535 bytes at the very end.
  if (size < 22) throw new WeightError(`${path}: ${size} bytes is too short for a ZIP archive; the file is truncated`);
  const tailLen = Math.min(size, 22 + 0xffff);
  const tailStart = size - tailLen;
  const tail = Buffer.alloc(tailLen);
  await readAt(fh, tail, tailStart, path);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new WeightError(`${path}: no ZIP end-of-central-directory record; the file is truncated (or not a ZIP archive)`);
  }
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (tail.readUInt16LE(eocd + 4) !== 0 || tail.readUInt16LE(eocd + 6) !== 0) {
    throw new WeightError(`${path}: multi-disk ZIP archives are not supported`);
  }
  const eocdAbs = tailStart + eocd;
  let cdLimit = eocdAbs;
  if (eocd >= 20 && tail.readUInt32LE(eocd - 20) === SIG_ZIP64_LOCATOR) {
    const at = u64(tail, eocd - 20 + 8, 'ZIP64 record offset', path);
    if (at + 56 > eocdAbs) throw new WeightError(`${path}: ZIP64 end-of-central-directory offset ${at} is out of range; the archive is corrupt`);
    const rec = Buffer.alloc(56);
    await readAt(fh, rec, at, path);
    if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw new WeightError(`${path}: no ZIP64 end-of-central-directory record at byte ${at}; the archive is corrupt`);
    count = u64(rec, 32, 'entry count', path);
    cdSize = u64(rec, 40, 'central directory size', path);
    cdOffset = u64(rec, 48, 'central directory offset', path);
    cdLimit = at;
  } else if (count === 0xffff || cdSize === U32_MAX || cdOffset === U32_MAX) {
    throw new WeightError(`${path}: the ZIP record asks for ZIP64 values but has no ZIP64 locator; the archive is corrupt or truncated`);
  }
  if (cdOffset + cdSize > cdLimit) {
    throw new WeightError(`${path}: central directory [${cdOffset}, ${cdOffset + cdSize}) runs past its end record at ${cdLimit}; the file is truncated or corrupt`);
  }
  const cd = Buffer.alloc(cdSize);
  await readAt(fh, cd, cdOffset, path);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || cd.readUInt32LE(p) !== SIG_CENTRAL) {
      throw new WeightError(`${path}: central directory entry ${i} of ${count} is missing or damaged; the archive is corrupt`);
    }
    const flags = cd.readUInt16LE(p + 8);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    if (p + 46 + nameLen + extraLen + commentLen > cdSize) throw new WeightError(`${path}: central directory entry ${i} overruns the directory; the archive is corrupt`);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
    const e: ZipEntry = {
      name,
      method: cd.readUInt16LE(p + 10),
      crc32: cd.readUInt32LE(p + 16),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      localHeaderOffset: cd.readUInt32LE(p + 42),
    };
    applyZip64Extra(e, cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen), path);
    if (flags & 1) throw new WeightError(`${path}: entry '${name}' is encrypted; encrypted archives are not supported`);
    if (entries.has(name)) throw new WeightError(`${path}: entry '${name}' appears twice in the central directory; the archive is corrupt`);
    if (e.localHeaderOffset + 30 > cdOffset) throw new WeightError(`${path}: entry '${name}' starts at byte ${e.localHeaderOffset}, inside or past the central directory; the archive is corrupt`);
    entries.set(name, e);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** ZIP64 extended information (header id 0x0001): 8-byte values, in this order, for each
 *  of size, compressed size and local header offset whose 32-bit field is 0xFFFFFFFF. */
function applyZip64Extra(e: ZipEntry, extra: Buffer, path: string): void {
  const needs = e.size === U32_MAX || e.compressedSize === U32_MAX || e.localHeaderOffset === U32_MAX;
  let q = 0;
  while (q + 4 <= extra.length) {
    const id = extra.readUInt16LE(q);
    const len = extra.readUInt16LE(q + 2);
    if (id === 0x0001) {
      let r = q + 4;
      const next = (what: string) => {
        if (r + 8 > q + 4 + len) throw new WeightError(`${path}: entry '${e.name}' has a short ZIP64 extra field (no ${what}); the archive is corrupt`);
        const v = u64(extra, r, what, path);
        r += 8;
        return v;
      };
      if (e.size === U32_MAX) e.size = next('size');
      if (e.compressedSize === U32_MAX) e.compressedSize = next('compressed size');
      if (e.localHeaderOffset === U32_MAX) e.localHeaderOffset = next('local header offset');
      return;
    }
    q += 4 + len;
  }
  if (needs) throw new WeightError(`${path}: entry '${e.name}' needs a ZIP64 extra field and has none; the archive is corrupt`);
}
