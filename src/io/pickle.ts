// A data-only pickle machine (protocols 0-5, CPython's Lib/pickle.py opcode set). It
// builds plain values itself and asks its caller for every global: the caller either
// returns an object from its allowlist or throws. Nothing is imported or executed, so a
// refused global fails the whole load before anything is built from it.
//
// Python values map to: None -> null, bool -> boolean, int -> bigint (Python ints are
// unbounded), float -> number, str -> string, bytes/bytearray -> Uint8Array, list ->
// array, tuple -> frozen array, dict -> PyDict, set/frozenset -> PySet.
import { WeightError } from '../gpu/errors.js';

/** A refused or malformed pickle (a WeightError: the checkpoint cannot be used). */
export class TorchPickleError extends WeightError {}

/** Thrown when the bytes end inside the pickle; readers of streams grow their window. */
export class PickleUnderrun extends Error {}

/** Called by REDUCE, NEWOBJ, INST and OBJ. */
export interface PyCallable {
  call(args: readonly unknown[]): unknown;
}

/** Receives BUILD's state. */
export interface PyBuildable {
  setState(state: unknown): void;
}

export class PyDict {
  readonly items = new Map<unknown, unknown>();
  /** Attributes set by BUILD (an OrderedDict's `_metadata`): kept, never interpreted. */
  attrs: unknown = undefined;
  constructor(readonly className = 'dict') {}
  get(key: string): unknown {
    return this.items.get(key);
  }
  has(key: string): boolean {
    return this.items.has(key);
  }
}

export class PySet {
  readonly items = new Set<unknown>();
  constructor(readonly frozen: boolean) {}
}

export interface PickleHooks {
  /** GLOBAL / STACK_GLOBAL / INST: returns the allowed object or throws to refuse. */
  findClass(module: string, name: string): unknown;
  /** PERSID / BINPERSID. */
  persistentLoad(pid: unknown): unknown;
}

const utf8 = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

export function isTuple(v: unknown): v is readonly unknown[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

function tuple(items: unknown[]): readonly unknown[] {
  return Object.freeze(items);
}

/** Runs one pickle starting at `start` of `data`. `where` names the file (and archive
 *  member) in errors. Returns the value and the offset just past STOP. */
export function unpickle(data: Uint8Array, start: number, hooks: PickleHooks, where: string): { value: unknown; end: number } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = start;
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();
  const fail = (msg: string): never => {
    throw new TorchPickleError(`${where}: ${msg}`);
  };
  const need = (n: number) => {
    if (pos + n > data.length) throw new PickleUnderrun(`${where}: pickle data ends at byte ${data.length}, needed ${pos + n}`);
  };
  const u8 = () => (need(1), data[pos++]);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(data.length)) throw new PickleUnderrun(`${where}: a length of ${v} runs past the pickle data`);
    return Number(v);
  };
  const bytes = (n: number) => {
    if (n < 0) fail(`negative length ${n} at byte ${pos}`);
    need(n);
    pos += n;
    return data.subarray(pos - n, pos);
  };
  const line = () => {
    const nl = data.indexOf(0x0a, pos);
    if (nl < 0) throw new PickleUnderrun(`${where}: pickle data ends inside a text line`);
    const s = latin1.decode(data.subarray(pos, nl));
    pos = nl + 1;
    return s;
  };
  // `stack` is reassigned by MARK handling: push reads it only after its argument is built.
  const push = (v: unknown) => {
    stack.push(v);
  };
  const pop = () => (stack.length ? stack.pop() : fail(`stack underflow at byte ${pos}`));
  const top = () => (stack.length ? stack[stack.length - 1] : fail(`empty stack at byte ${pos}`));
  const popMark = () => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) fail(`no MARK for the opcode at byte ${pos - 1}`);
    stack = prev as unknown[];
    return items;
  };
  const getMemo = (i: number) => (memo.has(i) ? memo.get(i) : fail(`memo key ${i} is not set (byte ${pos})`));
  const call = (f: unknown, args: unknown) => {
    if (!Array.isArray(args)) fail(`call arguments must be a tuple, found ${describe(args)}`);
    if (typeof (f as PyCallable)?.call !== 'function') fail(`${describe(f)} is not callable`);
    return (f as PyCallable).call(args as unknown[]);
  };
  const global = (module: string, name: string) => hooks.findClass(module, name);
  const list = (v: unknown) => (Array.isArray(v) && !Object.isFrozen(v) ? v : fail(`APPEND target is ${describe(v)}, not a list`));
  const dict = (v: unknown) => (v instanceof PyDict ? v : fail(`SETITEM target is ${describe(v)}, not a dict`));
  const int = (s: string) => {
    try {
      return BigInt(s.trim());
    } catch {
      return fail(`bad integer literal ${JSON.stringify(s)}`);
    }
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: { const v = u8(); if (v > 5) fail(`pickle protocol ${v} is newer than 5`); break; } // PROTO
      case 0x95: u64(); break; // FRAME: a length prefix only
      case 0x2e: { // STOP
        const value = pop();
        if (marks.length) fail('STOP inside an open MARK');
        return { value, end: pos };
      }
      case 0x28: marks.push(stack); stack = []; break; // MARK
      case 0x30: if (stack.length) stack.pop(); else popMark(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: push(top()); break; // DUP
      // Numbers
      case 0x4a: push(BigInt(i32())); break; // BININT
      case 0x4b: push(BigInt(u8())); break; // BININT1
      case 0x4d: push(BigInt(u16())); break; // BININT2
      case 0x49: { const s = line(); push(s === '00' ? false : s === '01' ? true : int(s)); break; } // INT
      case 0x4c: push(int(line().replace(/L$/, ''))); break; // LONG
      case 0x8a: push(longLE(bytes(u8()))); break; // LONG1
      case 0x8b: push(longLE(bytes(i32()))); break; // LONG4
      case 0x46: { const s = line(); const f = Number(s); if (Number.isNaN(f) && !/nan/i.test(s)) fail(`bad float literal ${JSON.stringify(s)}`); push(f); break; } // FLOAT
      case 0x47: need(8); push(view.getFloat64(pos, false)); pos += 8; break; // BINFLOAT (big-endian)
      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      // Strings and bytes
      case 0x53: push(pyStringLiteral(line(), fail)); break; // STRING
      case 0x54: push(utf8.decode(bytes(i32()))); break; // BINSTRING (Python 2 str, read as UTF-8 like torch.load)
      case 0x55: push(utf8.decode(bytes(u8()))); break; // SHORT_BINSTRING
      case 0x56: push(rawUnicodeEscape(line())); break; // UNICODE
      case 0x58: push(utf8.decode(bytes(u32()))); break; // BINUNICODE
      case 0x8c: push(utf8.decode(bytes(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: push(utf8.decode(bytes(u64()))); break; // BINUNICODE8
      case 0x42: push(bytes(u32()).slice()); break; // BINBYTES
      case 0x43: push(bytes(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: push(bytes(u64()).slice()); break; // BINBYTES8
      case 0x96: push(bytes(u64()).slice()); break; // BYTEARRAY8
      // Containers
      case 0x29: push(tuple([])); break; // EMPTY_TUPLE
      case 0x74: push(tuple(popMark())); break; // TUPLE
      case 0x85: push(tuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); push(tuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); push(tuple([a, b, c])); break; } // TUPLE3
      case 0x5d: push([]); break; // EMPTY_LIST
      case 0x6c: push(popMark()); break; // LIST
      case 0x61: { const v = pop(); list(top()).push(v); break; } // APPEND
      case 0x65: { const items = popMark(); list(top()).push(...items); break; } // APPENDS
      case 0x7d: push(new PyDict()); break; // EMPTY_DICT
      case 0x64: { const items = popMark(); const d = new PyDict(); setPairs(d, items, fail); push(d); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); dict(top()).items.set(k, v); break; } // SETITEM
      case 0x75: { const items = popMark(); setPairs(dict(top()), items, fail); break; } // SETITEMS
      case 0x8f: push(new PySet(false)); break; // EMPTY_SET
      case 0x90: { const items = popMark(); const s = top(); if (!(s instanceof PySet) || s.frozen) fail('ADDITEMS target is not a set'); for (const x of items) (s as PySet).items.add(x); break; } // ADDITEMS
      case 0x91: { const s = new PySet(true); for (const x of popMark()) s.items.add(x); push(s); break; } // FROZENSET
      // Memo
      case 0x70: memo.set(Number(int(line())), top()); break; // PUT
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x67: push(getMemo(Number(int(line())))); break; // GET
      case 0x68: push(getMemo(u8())); break; // BINGET
      case 0x6a: push(getMemo(u32())); break; // LONG_BINGET
      // Globals, calls, state
      case 0x63: { const module = line(); const name = line(); push(global(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        push(global(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); const f = pop(); push(call(f, args)); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); push(call(cls, args)); break; } // NEWOBJ
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof PyDict) || kwargs.items.size) fail(`keyword arguments to ${describe(cls)} are not supported`);
        push(call(cls, args));
        break;
      }
      case 0x69: { const module = line(); const name = line(); const args = popMark(); push(call(global(module, name), args)); break; } // INST
      case 0x6f: { const items = popMark(); const cls = items.shift(); push(call(cls, items)); break; } // OBJ
      case 0x62: { // BUILD
        const state = pop();
        const inst = top();
        if (inst instanceof PyDict) inst.attrs = state;
        else if (typeof (inst as PyBuildable)?.setState === 'function') (inst as PyBuildable).setState(state);
        else fail(`BUILD (setting object state) on ${describe(inst)} is not supported`);
        break;
      }
      case 0x50: push(hooks.persistentLoad(line())); break; // PERSID
      case 0x51: push(hooks.persistentLoad(pop())); break; // BINPERSID
      case 0x82: case 0x83: case 0x84: fail(`extension-registry opcode EXT at byte ${at} is not supported (copyreg codes name arbitrary classes)`); break;
      case 0x97: case 0x98: fail(`out-of-band buffer opcode at byte ${at} is not supported`); break;
      default: fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}; the data is corrupt or not a pickle`);
    }
  }
}

/** Python's int.from_bytes(b, 'little', signed=True). */
function longLE(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b.length && b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return v;
}

function setPairs(d: PyDict, items: unknown[], fail: (m: string) => never): void {
  if (items.length % 2) fail('odd number of items for a dict');
  for (let i = 0; i < items.length; i += 2) d.items.set(items[i], items[i + 1]);
}

/** Protocol 0 STRING: a quoted Python 2 repr. */
function pyStringLiteral(s: string, fail: (m: string) => never): string {
  const q = s[0];
  if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) fail(`STRING literal ${JSON.stringify(s)} is not quoted`);
  const body = s.slice(1, -1);
  const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v', '0': '\0' };
  return body.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) => (e[0] === 'x' && e.length === 3 ? String.fromCharCode(parseInt(e.slice(1), 16)) : simple[e] ?? `\\${e}`));
}

/** Protocol 0 UNICODE: latin-1 text with \uXXXX and \UXXXXXXXX escapes. */
function rawUnicodeEscape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, a: string, b: string) => String.fromCodePoint(parseInt(a ?? b, 16)));
}

/** A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return Object.isFrozen(v) ? `a tuple of ${v.length}` : `a list of ${v.length}`;
  if (v instanceof PyDict) return `a ${v.className}`;
  if (v instanceof Uint8Array) return `bytes of length ${v.length}`;
  if (typeof v === 'object') return String(v);
  return `${typeof v} ${String(v).slice(0, 40)}`;
}
