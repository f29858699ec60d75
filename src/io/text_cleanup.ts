// Text cleanup in front of the CLIP BPE, in the two flavours SD pipelines meet:
//
// - `basicClean`: what transformers 4.35 CLIPTokenizer does when ftfy is not installed
//   (the common case): BasicTokenizer(strip_accents=False, do_split_on_punc=False) from
//   tokenization_bert.py — drop NUL, U+FFFD and every category-C character except \t\n\r,
//   map whitespace (\t\n\r, Zs) to spaces, put spaces around CJK ideographs, NFC, split on
//   whitespace, lower-case each word — then ' '.join.
// - `ftfyClean`: the path with ftfy 6.1.1 installed (OpenAI's original behaviour):
//   whitespace_clean(ftfy.fix_text(text)).lower(). `fixText` reimplements the fix_text
//   steps that need only small tables — HTML entities (the HTML 4 set plus numeric
//   references and ftfy's all-caps variants), C1 controls as windows-1252, Latin
//   ligatures, full/half-width forms, curly quotes, line breaks, lone surrogates, terminal
//   escapes, control characters, NFC — and leaves out ftfy's mojibake repair
//   (fix_encoding), whose heuristics need ftfy's large character tables.

/** BasicTokenizer._is_chinese_char: the CJK ideograph blocks (not kana or hangul). */
function isCjk(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

const CONTROL = /^\p{C}$/u;
const SPACE_SEPARATOR = /^\p{Zs}$/u;

/** transformers' fallback when ftfy is missing (see the file header). */
export function basicClean(text: string): string {
  let cleaned = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || SPACE_SEPARATOR.test(ch)) cleaned += ' ';
    else if (cp === 0 || cp === 0xfffd || CONTROL.test(ch)) continue;
    else if (isCjk(cp)) cleaned += ` ${ch} `;
    else cleaned += ch;
  }
  return cleaned.normalize('NFC').split(/\s+/).filter((w) => w.length > 0).map((w) => w.toLowerCase()).join(' ');
}

/** transformers' path with ftfy installed: whitespace_clean(fix_text(text)).lower(). */
export function ftfyClean(text: string): string {
  return fixText(text).replace(/\s+/g, ' ').trim().toLowerCase();
}

/** ftfy.fix_text with the default config, less fix_encoding. Like ftfy, it works line by
 *  line, repeats the fixes until nothing changes, and stops unescaping HTML for good once
 *  a line contains '<' (ftfy's "auto" mode replaces its config for the later lines too). */
export function fixText(text: string): string {
  let unescape = true;
  let out = '';
  for (let pos = 0; pos < text.length;) {
    const nl = text.indexOf('\n', pos);
    const end = nl < 0 ? text.length : nl + 1;
    let segment = text.slice(pos, end);
    if (segment.includes('<')) unescape = false;
    for (;;) {
      const before = segment;
      if (unescape) segment = segment.replace(/&#?[0-9A-Za-z]{1,24};/g, unescapeEntity);
      segment = fixSegment(segment);
      if (segment === before) break;
    }
    out += segment;
    pos = end;
  }
  return out;
}

/** Windows-1252 for bytes 0x80-0x9f; the five undefined bytes keep their C1 code point
 *  (ftfy's "sloppy" codec, and Python's html charref table). */
const CP1252_C1 = '\u20ac\x81\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\x8d\u017d\x8f' +
  '\x90\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\x9d\u017e\u0178';

const LIGATURES: Record<string, string> = {
  'Ĳ': 'IJ', 'ĳ': 'ij', 'ŉ': 'ʼn', 'Ǳ': 'DZ', 'ǲ': 'Dz', 'ǳ': 'dz', 'Ǆ': 'DŽ', 'ǅ': 'Dž', 'ǆ': 'dž', 'Ǉ': 'LJ', 'ǈ': 'Lj',
  'ǉ': 'lj', 'Ǌ': 'NJ', 'ǋ': 'Nj', 'ǌ': 'nj', 'ﬀ': 'ff', 'ﬁ': 'fi', 'ﬂ': 'fl', 'ﬃ': 'ffi', 'ﬄ': 'ffl', 'ﬅ': 'ſt', 'ﬆ': 'st',
};

/** ftfy's width map: U+3000 to a space, U+FF01-U+FFEF to their NFKC forms. */
let widthMap: Map<string, string> | null = null;
function width(ch: string): string {
  if (!widthMap) {
    widthMap = new Map([['\u3000', ' ']]);
    for (let cp = 0xff01; cp < 0xfff0; cp++) {
      const c = String.fromCodePoint(cp);
      const n = c.normalize('NFKC');
      if (n !== c) widthMap.set(c, n);
    }
  }
  return widthMap.get(ch) ?? ch;
}

/** One pass of ftfy's fixers after HTML unescaping, in ftfy's order. */
function fixSegment(s: string): string {
  s = s.replace(/[\x80-\x9f]/g, (c) => CP1252_C1[c.charCodeAt(0) - 0x80]);
  s = s.replace(/[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g, (c) => LIGATURES[c] ?? c);
  s = s.replace(/[\u3000\uff01-\uffef]/g, width);
  s = s.replace(/[\u201c-\u201f]/g, '"').replace(/[\u02bc\u2018-\u201b]/g, "'");
  s = s.replace(/\r\n|[\r\u2028\u2029\x85]/g, '\n');
  s = s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  s = s.replace(/\x1b\[[\d;]*[a-zA-Z]/g, '');
  s = s.replace(/[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g, '');
  return s.normalize('NFC');
}

/** The HTML 4 named entities (and &apos;) as name:hex code point. ftfy accepts all of
 *  HTML5's names; these are the ones text meets in practice. */
const ENTITY_TABLE =
  'quot:22 amp:26 apos:27 lt:3c gt:3e nbsp:a0 iexcl:a1 cent:a2 pound:a3 curren:a4 yen:a5 brvbar:a6 ' +
  'sect:a7 uml:a8 copy:a9 ordf:aa laquo:ab not:ac shy:ad reg:ae macr:af deg:b0 plusmn:b1 sup2:b2 ' +
  'sup3:b3 acute:b4 micro:b5 para:b6 middot:b7 cedil:b8 sup1:b9 ordm:ba raquo:bb frac14:bc frac12:bd ' +
  'frac34:be iquest:bf Agrave:c0 Aacute:c1 Acirc:c2 Atilde:c3 Auml:c4 Aring:c5 AElig:c6 Ccedil:c7 ' +
  'Egrave:c8 Eacute:c9 Ecirc:ca Euml:cb Igrave:cc Iacute:cd Icirc:ce Iuml:cf ETH:d0 Ntilde:d1 Ograve:d2 ' +
  'Oacute:d3 Ocirc:d4 Otilde:d5 Ouml:d6 times:d7 Oslash:d8 Ugrave:d9 Uacute:da Ucirc:db Uuml:dc ' +
  'Yacute:dd THORN:de szlig:df agrave:e0 aacute:e1 acirc:e2 atilde:e3 auml:e4 aring:e5 aelig:e6 ' +
  'ccedil:e7 egrave:e8 eacute:e9 ecirc:ea euml:eb igrave:ec iacute:ed icirc:ee iuml:ef eth:f0 ntilde:f1 ' +
  'ograve:f2 oacute:f3 ocirc:f4 otilde:f5 ouml:f6 divide:f7 oslash:f8 ugrave:f9 uacute:fa ucirc:fb ' +
  'uuml:fc yacute:fd thorn:fe yuml:ff OElig:152 oelig:153 Scaron:160 scaron:161 Yuml:178 fnof:192 ' +
  'circ:2c6 tilde:2dc Alpha:391 Beta:392 Gamma:393 Delta:394 Epsilon:395 Zeta:396 Eta:397 Theta:398 ' +
  'Iota:399 Kappa:39a Lambda:39b Mu:39c Nu:39d Xi:39e Omicron:39f Pi:3a0 Rho:3a1 Sigma:3a3 Tau:3a4 ' +
  'Upsilon:3a5 Phi:3a6 Chi:3a7 Psi:3a8 Omega:3a9 alpha:3b1 beta:3b2 gamma:3b3 delta:3b4 epsilon:3b5 ' +
  'zeta:3b6 eta:3b7 theta:3b8 iota:3b9 kappa:3ba lambda:3bb mu:3bc nu:3bd xi:3be omicron:3bf pi:3c0 ' +
  'rho:3c1 sigmaf:3c2 sigma:3c3 tau:3c4 upsilon:3c5 phi:3c6 chi:3c7 psi:3c8 omega:3c9 thetasym:3d1 ' +
  'upsih:3d2 piv:3d6 ensp:2002 emsp:2003 thinsp:2009 zwnj:200c zwj:200d lrm:200e rlm:200f ndash:2013 ' +
  'mdash:2014 lsquo:2018 rsquo:2019 sbquo:201a ldquo:201c rdquo:201d bdquo:201e dagger:2020 Dagger:2021 ' +
  'bull:2022 hellip:2026 permil:2030 prime:2032 Prime:2033 lsaquo:2039 rsaquo:203a oline:203e ' +
  'frasl:2044 euro:20ac image:2111 weierp:2118 real:211c trade:2122 alefsym:2135 larr:2190 uarr:2191 ' +
  'rarr:2192 darr:2193 harr:2194 crarr:21b5 lArr:21d0 uArr:21d1 rArr:21d2 dArr:21d3 hArr:21d4 ' +
  'forall:2200 part:2202 exist:2203 empty:2205 nabla:2207 isin:2208 notin:2209 ni:220b prod:220f ' +
  'sum:2211 minus:2212 lowast:2217 radic:221a prop:221d infin:221e ang:2220 and:2227 or:2228 cap:2229 ' +
  'cup:222a int:222b there4:2234 sim:223c cong:2245 asymp:2248 ne:2260 equiv:2261 le:2264 ge:2265 ' +
  'sub:2282 sup:2283 nsub:2284 sube:2286 supe:2287 oplus:2295 otimes:2297 perp:22a5 sdot:22c5 ' +
  'lceil:2308 rceil:2309 lfloor:230a rfloor:230b lang:2329 rang:232a loz:25ca spades:2660 clubs:2663 ' +
  'hearts:2665 diams:2666 ';
let entities: Map<string, string> | null = null;
function entityMap(): Map<string, string> {
  if (!entities) {
    entities = new Map();
    for (const item of ENTITY_TABLE.trim().split(' ')) {
      const [name, hex] = item.split(':');
      entities.set(name, String.fromCodePoint(parseInt(hex, 16)));
    }
    // ftfy also decodes all-caps spellings of lower-case names (&EACUTE; -> É) when the
    // capitalised name is not an entity of its own; for this table the rule always holds.
    for (const [name, ch] of [...entities]) {
      const upper = name.toUpperCase();
      if (name === name.toLowerCase() && !entities.has(upper)) entities.set(upper, ch.toUpperCase());
    }
  }
  return entities;
}

/** ftfy's _unescape_fixup: named entities from the table, numeric references as Python's
 *  html.unescape decodes them; anything else stays as written. */
function unescapeEntity(ref: string): string {
  const body = ref.slice(1, -1);
  if (!body.startsWith('#')) return entityMap().get(body) ?? ref;
  const m = /^#(?:([0-9]+)|[xX]([0-9a-fA-F]+))$/.exec(body);
  if (!m) return ref;
  const cp = m[1] !== undefined ? parseInt(m[1], 10) : parseInt(m[2], 16);
  if (cp === 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return '\ufffd';
  if (cp >= 0x80 && cp <= 0x9f) return CP1252_C1[cp - 0x80];
  const invalid = (cp >= 0x1 && cp <= 0x8) || cp === 0xb || (cp >= 0xe && cp <= 0x1f) || cp === 0x7f ||
    (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe;
  return invalid ? '' : String.fromCodePoint(cp);
}
