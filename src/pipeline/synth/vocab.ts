// The class vocabulary of a synthetic dataset, its optional seen/unseen split (recorded,
// so that a segmenter trained on the data can be scored on seen and unseen classes; the
// dataset itself covers every class), and the optional list of class pairs.
//
// --vocab voc | coco | FILE: the built-in PASCAL VOC (20 classes, VOC order) and COCO (80,
// category-id order) lists of pipeline/eval/vocab.ts, or a text file, one class per line.
// --split 1|2|3 (VOC's official splits), 65_15 (COCO), or FILE (the seen classes, one per
// line; every other class unseen). --pair-list FILE: one pair per line, the two class
// names separated by a tab or a comma.
// Text files: UTF-8, blank lines and lines starting with '#' ignored, names trimmed (inner
// runs of spaces become one), each class or pair once.
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { InputError } from '../../gpu/errors.js';
import { cocoSplit65_15, COCO_CLASSES, VOC_CLASSES, vocSplit, type ClassSplit } from '../eval/vocab.js';
import { MAX_CLASSES } from './plan.js';

export interface SynthVocabulary {
  /** 'voc', 'coco', or the absolute path of the vocabulary file. */
  name: string;
  classes: readonly string[];
  /** Seen/unseen split, or null when none was given. */
  split: ClassSplit | null;
}

/** Longest class name accepted (a prompt names two and must fit 77 tokens). */
const MAX_NAME = 100;

/** The non-comment lines of a text file, with their 1-based line numbers. */
function readLines(path: string, option: string): Array<{ text: string; line: number }> {
  let text: string;
  try {
    if (!statSync(path).isFile()) throw new InputError(`${option} ${path} is not a regular file; give a text file, one entry per line`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${option} ${path}: cannot read it (${(e as Error).message})`);
  }
  const out: Array<{ text: string; line: number }> = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const t = raw.trim();
    if (t !== '' && !t.startsWith('#')) out.push({ text: t, line: i + 1 });
  });
  if (out.length === 0) throw new InputError(`${option} ${path} is empty (one entry per line; '#' starts a comment)`);
  return out;
}

function readClassFile(path: string, option: string): string[] {
  const names: string[] = [];
  for (const { text: raw, line } of readLines(path, option)) {
    const text = raw.replace(/\s+/g, ' ');
    if (text.length > MAX_NAME) throw new InputError(`${path} line ${line}: the class name is ${text.length} characters long; keep names under ${MAX_NAME}`);
    if (names.includes(text)) throw new InputError(`${path} line ${line}: class '${text}' is listed twice; list each class once`);
    names.push(text);
  }
  return names;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The vocabulary `vocab` with split `split` (both as given on the command line). */
export function synthVocabulary(vocab: string, split?: string): SynthVocabulary {
  let name: string;
  let classes: readonly string[];
  if (vocab === 'voc' || vocab === 'coco') {
    name = vocab;
    classes = vocab === 'voc' ? VOC_CLASSES : COCO_CLASSES;
  } else if (isFile(vocab)) {
    name = resolve(vocab);
    classes = readClassFile(vocab, '--vocab');
    if (classes.length > MAX_CLASSES) throw new InputError(`--vocab ${vocab} lists ${classes.length} classes; label maps hold at most ${MAX_CLASSES} (one byte per pixel, 0 background, 255 ignore)`);
  } else {
    throw new InputError(`--vocab ${vocab} is not known and is not a file: use voc (PASCAL VOC, 20 classes), coco (80 classes) or a text file with one class name per line`);
  }
  if (split === undefined) return { name, classes, split: null };
  if (vocab === 'voc' && /^[123]$/.test(split)) return { name, classes, split: vocSplit(Number(split)) };
  if (vocab === 'coco' && (split === '65_15' || split === '65/15')) return { name, classes, split: cocoSplit65_15() };
  if (!isFile(split)) {
    const builtin = vocab === 'voc' ? 'the official PASCAL VOC splits are 1, 2 and 3' : vocab === 'coco' ? 'the COCO split is 65_15' : 'a vocabulary file takes a file of seen classes';
    throw new InputError(`--split ${split} is not a split of --vocab ${vocab} (${builtin}) and is not a file of seen classes`);
  }
  const seen = new Set(readClassFile(split, '--split'));
  const unknown = [...seen].filter((c) => !classes.includes(c));
  if (unknown.length) {
    throw new InputError(`--split ${split} names ${unknown.map((c) => `'${c}'`).join(', ')}, not in --vocab ${vocab} (its classes: ${classes.join(', ')}); spell them as the vocabulary does`);
  }
  return { name, classes, split: { name: `seen classes of ${resolve(split)}`, seen: classes.filter((c) => seen.has(c)), unseen: classes.filter((c) => !seen.has(c)) } };
}

/** The pairs of a --pair-list file as vocabulary positions [a, b], a < b, in file order. */
export function readPairList(path: string, classes: readonly string[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const seen = new Set<string>();
  for (const { text, line } of readLines(path, '--pair-list')) {
    const parts = (text.includes('\t') ? text.split('\t') : text.split(',')).map((p) => p.trim().replace(/\s+/g, ' '));
    if (parts.length !== 2 || parts.some((p) => p === '')) {
      throw new InputError(`${path} line ${line}: '${text}' is not two class names separated by a tab or a comma`);
    }
    const idx = parts.map((p) => classes.indexOf(p));
    const bad = parts.filter((_, k) => idx[k] < 0);
    if (bad.length) throw new InputError(`${path} line ${line}: ${bad.map((c) => `'${c}'`).join(', ')} not in the vocabulary (its classes: ${classes.join(', ')})`);
    if (idx[0] === idx[1]) throw new InputError(`${path} line ${line}: a pair needs two different classes, got '${parts[0]}' twice`);
    const pair: [number, number] = idx[0] < idx[1] ? [idx[0], idx[1]] : [idx[1], idx[0]];
    const key = pair.join(',');
    if (seen.has(key)) throw new InputError(`${path} line ${line}: the pair ${parts.join(' + ')} is listed twice (order does not matter); list each pair once`);
    seen.add(key);
    out.push(pair);
  }
  return out;
}
