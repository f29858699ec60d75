// Atomic file replacement: write a temp file in the target's folder, fsync it, then
// rename it over the target. A crash or an error part-way leaves the old file (or no
// file) in place, never a truncated one; rename is atomic within one filesystem, which
// is why the temp file sits next to the target rather than in os.tmpdir().
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Runs `fill` on a fresh temp file next to `path`, then fsyncs and renames it to `path`.
 *  On any error the temp file is removed and the error rethrown. */
export async function withAtomicFile(path: string, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx');
  try {
    await fill(fh);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(dirname(path));
}

/** Writes every byte of `data` at the handle's current position (fh.write may write less). */
export async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesWritten } = await fh.write(data, done, data.byteLength - done);
    done += bytesWritten;
  }
}

/** Replaces `path` with `data` atomically. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  await withAtomicFile(path, (fh) => writeAll(fh, bytes));
}

/** Makes the rename durable; some platforms (Windows) cannot open a folder, which is fine. */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // The rename already happened; only its durability across power loss is at stake.
  } finally {
    await fh?.close().catch(() => undefined);
  }
}
