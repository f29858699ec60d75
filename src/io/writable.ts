// Output paths checked before the work that produces them: a bad output option must fail
// in the first second, not after minutes of sampling (ENOTDIR, EISDIR at the rename).
import { accessSync, constants, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InputError } from '../gpu/errors.js';

/** Checks, without writing anything, that every path in `paths` can be written (its
 *  folder exists or can be created, is writable, and the path is not itself a folder), so
 *  that a bad output option fails before minutes of work rather than after. `option`
 *  names the command-line option in the message. */
export function checkWritable(paths: readonly string[], option: string): void {
  for (const path of paths) {
    const st = statOrNull(path);
    if (st && !st.isFile()) throw new InputError(`${option}: ${path} exists and is not a regular file, so it cannot be replaced; choose another ${option}`);
    // The nearest existing ancestor must be a writable folder (mkdir -p makes the rest).
    let dir = dirname(resolve(path));
    let below = resolve(path);
    for (;;) {
      const d = statOrNull(dir);
      if (d) {
        if (!d.isDirectory()) {
          throw new InputError(`${option}: ${dir} is ${d.isFile() ? 'a file' : 'not a folder'}, so ${path} cannot be created under it; choose another ${option}`);
        }
        try {
          accessSync(dir, constants.W_OK | constants.X_OK);
        } catch {
          throw new InputError(`${option}: cannot create ${below === resolve(path) ? path : below} because ${dir} is not writable; choose another ${option}`);
        }
        break;
      }
      below = dir;
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path, { throwIfNoEntry: false }) ?? null;
  } catch (e) {
    // ENOTDIR: a path component is a file; reported by the ancestor walk.
    if ((e as { code?: string }).code === 'ENOTDIR') return null;
    throw new InputError(`cannot check ${path}: ${(e as Error).message}`);
  }
}

