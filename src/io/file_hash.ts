// SHA-256 of weight files for result records: streamed in large chunks (SD checkpoints are
// several GB; nothing is held in memory), and cached per process by (absolute path, size,
// mtime), so a file hashed once is not read again unless it changed on disk.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { InputError } from '../gpu/errors.js';

const CHUNK = 8 << 20;
const cache = new Map<string, Promise<string>>();

export interface FileDigest {
  path: string;
  bytes: number;
  sha256: string;
}

/** Hex SHA-256 of the file at `path`, with its size. */
export async function sha256File(path: string): Promise<FileDigest> {
  const abs = resolve(path);
  let st;
  try {
    st = await stat(abs);
  } catch (e) {
    throw new InputError(`cannot hash ${path}: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw new InputError(`cannot hash ${path}: it is not a regular file`);
  const key = `${abs}\0${st.size}\0${st.mtimeMs}`;
  let pending = cache.get(key);
  if (!pending) {
    pending = new Promise<string>((done, fail) => {
      const hash = createHash('sha256');
      const stream = createReadStream(abs, { highWaterMark: CHUNK });
      stream.on('data', (chunk) => hash.update(chunk));
      stream.on('error', (e) => fail(new InputError(`cannot hash ${path}: ${e.message}`)));
      stream.on('end', () => done(hash.digest('hex')));
    });
    cache.set(key, pending);
    pending.catch(() => cache.delete(key));
  }
  return { path, bytes: st.size, sha256: await pending };
}
