// Vocabularies and seen/unseen splits of dataset construction: the built-in PASCAL VOC (20
// classes, the official splits 1, 2, 3) and COCO (80 classes, 65/15) of pipeline/eval/vocab.ts,
// or a custom one from text files.
//
// File formats (UTF-8 text, one class name per line; blank lines and lines starting with
// '#' are ignored; surrounding spaces are trimmed; each name once):
//  - --vocab FILE: the vocabulary's classes, in order;
//  - --split FILE: the SEEN classes (training builds prompts over these); every other class
//    of the vocabulary is unseen. Each name must be one of the vocabulary's classes.
// A custom vocabulary without --split has every class seen.
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { cocoSplit65_15, COCO_CLASSES, VOC_CLASSES, vocSplit, type ClassSplit } from '../eval/vocab.js';

export interface DatasetVocabulary {
  /** 'voc', 'coco', or the absolute path of a vocabulary file. */
  name: string;
  classes: readonly string[];
  split: ClassSplit;
}

/** Longest class name accepted (a prompt must fit the 77-token window with room). */
const MAX_NAME = 100;

/** The names listed in a class file, checked (no duplicates, sane lengths). */
function readClassFile(path: string, option: string): string[] {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new InputError(`${option} ${path} is not a regular file; give a text file with one class name per line`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${option} ${path}: cannot read it (${(e as Error).message}); give voc, coco or a text file with one class name per line`);
  }
  const names: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const name = raw.trim().replace(/\s+/g, ' ');
    if (name === '' || name.startsWith('#')) return;
    if (name.length > MAX_NAME) throw new InputError(`${path} line ${i + 1}: the class name is ${name.length} characters long; keep names under ${MAX_NAME}`);
    if (names.includes(name)) throw new InputError(`${path} line ${i + 1}: class '${name}' is listed twice; list each class once`);
    names.push(name);
  });
  if (names.length === 0) throw new InputError(`${option} ${path} lists no class names (one per line; '#' starts a comment)`);
  return names;
}

/** A vocabulary (`voc`, `coco` or a file) and its split (`1`/`2`/`3` for VOC, `65_15` for
 *  COCO, or a file of seen classes). */
export function datasetVocabulary(vocab: string, split: string | undefined): DatasetVocabulary {
  let name: string;
  let classes: readonly string[];
  let builtin: ClassSplit | undefined;
  if (vocab === 'voc') {
    name = 'voc';
    classes = VOC_CLASSES;
    if (split !== undefined && /^[123]$/.test(split)) builtin = vocSplit(Number(split));
    else if (split === undefined) throw new InputError('--vocab voc needs --split 1, 2 or 3 (the official PASCAL VOC splits) or --split FILE (the seen classes, one per line)');
  } else if (vocab === 'coco') {
    name = 'coco';
    classes = COCO_CLASSES;
    if (split === undefined || split === '65_15' || split === '65/15') builtin = cocoSplit65_15();
  } else {
    let isFile = false;
    try {
      isFile = statSync(vocab).isFile();
    } catch {
      isFile = false;
    }
    if (!isFile) throw new InputError(`--vocab ${vocab} is not known and is not a file: use voc (PASCAL VOC, 20 classes), coco (80 classes) or a text file with one class name per line`);
    name = resolve(vocab);
    classes = readClassFile(vocab, '--vocab');
    if (split === undefined) builtin = { name: 'all seen', seen: classes, unseen: [] };
  }
  if (builtin) return { name, classes, split: builtin };
  const file = split as string;
  if (/^\d+$/.test(file) || file === '65_15') {
    throw new InputError(`--split ${file} is not a split of --vocab ${vocab}: ${vocab === 'voc' ? 'the official PASCAL VOC splits are 1, 2 and 3' : vocab === 'coco' ? 'the COCO split is 65_15' : 'a custom vocabulary takes a file of seen classes'}, or give a file of seen classes`);
  }
  const seen = readClassFile(file, '--split');
  const known = new Set(classes);
  const unknown = seen.filter((c) => !known.has(c));
  if (unknown.length) {
    throw new InputError(`--split ${file} names class(es) ${unknown.map((c) => `'${c}'`).join(', ')} that --vocab ${vocab} does not have (its classes: ${classes.join(', ')}); spell them as the vocabulary does`);
  }
  const seenSet = new Set(seen);
  return {
    name,
    classes,
    // In vocabulary order, so the same set of names gives the same split whatever the file's order.
    split: { name: `seen classes of ${resolve(file)}`, seen: classes.filter((c) => seenSet.has(c)), unseen: classes.filter((c) => !seenSet.has(c)) },
  };
}
