// Inputs are read only when they are regular files: opening a FIFO for reading blocks
// until a writer appears (a hang, not an error), and a folder or device fails later with
// an unhelpful message. Callers stat first and report what the path is instead.
import { statSync, type Stats } from 'node:fs';

/** "a folder", "a named pipe (FIFO)", ... for a path that is not a regular file. */
export function fileKind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'neither a file nor a folder';
}

/** Why `path` cannot be read as a file ("does not exist", "is a folder ..."), or null
 *  when it is a regular file. Follows symlinks, as opening would. */
export function notRegularFile(path: string): string | null {
  let st: Stats | undefined;
  try {
    st = statSync(path, { throwIfNoEntry: false });
  } catch (e) {
    return `cannot be read (${(e as Error).message})`;
  }
  if (!st) return 'does not exist';
  return st.isFile() ? null : `is not a regular file (it is ${fileKind(st)})`;
}
