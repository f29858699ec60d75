// File names for user-given class names and prompt words ("potted plant", "a/b", "..",
// "CON", "café"): safe on Linux, macOS and Windows, unique within one folder even on a
// case-insensitive file system, and stable (the same list gives the same names). The
// mapping is recorded in result.json, so a name never has to be guessed back.

/** Longest stem kept (well under every file system's 255-byte limit, with room for a
 *  collision suffix and the extension). */
const MAX_STEM = 64;

/** Device names Windows reserves in every folder, with any extension. */
const RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/i;

/** One name as a file stem: accents dropped, every run of characters other than ASCII
 *  letters, digits, '-' and '.' becomes '_', no leading or trailing '.', '_' or '-', at
 *  most MAX_STEM characters; `fallback` when nothing is left. */
export function safeStem(name: string, fallback = 'item'): string {
  let s = name.normalize('NFKD').replace(/\p{M}/gu, '');
  s = s.replace(/[^A-Za-z0-9.-]+/g, '_');
  s = s.replace(/^[._-]+|[._-]+$/g, '');
  if (s.length > MAX_STEM) s = s.slice(0, MAX_STEM).replace(/[._-]+$/g, '');
  if (s === '') s = fallback;
  if (RESERVED.test(s.split('.')[0])) s = `${s}_`;
  return s;
}

/** Unique file names `<stem><ext>` for `names`, in order: a stem already taken (compared
 *  case-insensitively) gets the first free suffix -2, -3, ... */
export function uniqueFileNames(names: readonly string[], ext: string, fallback = 'item'): string[] {
  const taken = new Set<string>();
  return names.map((name) => {
    const stem = safeStem(name, fallback);
    let candidate = stem;
    for (let k = 2; taken.has(candidate.toLowerCase()); k++) candidate = `${stem}-${k}`;
    taken.add(candidate.toLowerCase());
    return `${candidate}${ext}`;
  });
}
