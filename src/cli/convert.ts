// `grounded-sd convert IN OUT.safetensors`: any checkpoint the engine reads (torch.save
// zip or legacy .ckpt/.pth/.pt/.bin, a Lightning checkpoint's state_dict, safetensors)
// rewritten as safetensors. Tensors are read, converted and written one at a time
// (writeSafetensorsStreamed), so a 4-7 GB SD .ckpt needs about one tensor of memory,
// and the output appears atomically (no half-written file on error).
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { InputError, formatBytes } from '../gpu/errors.js';
import { writeSafetensorsStreamed, type SafeDType, type StreamedTensor } from '../io/safetensors.js';
import { loadCheckpoint, type TorchDType } from '../io/torch_pickle.js';
import { FLOAT_DTYPES, ITEMSIZE, bytesToF16, bytesToF32, numelOf } from '../io/torch_tensor.js';
import type { Command } from './main.js';

export type ConvertDType = 'f32' | 'f16' | 'keep';

export interface ConvertOptions {
  /** Float tensors' output type; integer and bool tensors are always kept. */
  dtype: ConvertDType;
  /** Keep only tensors whose name starts with this (names are written unchanged). */
  prefix?: string;
  log?: (msg: string) => void;
}

export interface ConvertSummary {
  tensors: number;
  bytes: number;
  format: string;
  /** Finite values that became +-inf when rounded to f16. */
  f16Overflow: number;
}

const TO_SAFE: Partial<Record<TorchDType, SafeDType>> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64', int64: 'I64', int32: 'I32', int16: 'I16',
  int8: 'I8', uint8: 'U8', uint16: 'U16', uint32: 'U32', uint64: 'U64', bool: 'BOOL',
};
const SAFE_ITEMSIZE: Record<SafeDType, number> = {
  F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, U32: 4, U64: 8, BOOL: 1,
};

export async function convertCheckpoint(input: string, output: string, opts: ConvertOptions): Promise<ConvertSummary> {
  if (!output.endsWith('.safetensors')) throw new InputError(`output ${output} must end in .safetensors (convert writes safetensors only)`);
  if (resolve(input) === resolve(output)) throw new InputError(`input and output are the same file (${input}); give another output path`);
  const log = opts.log ?? (() => {});
  const src = await loadCheckpoint(input);
  try {
    const all = src.names();
    const names = opts.prefix ? all.filter((n) => n.startsWith(opts.prefix as string)) : all;
    if (names.length === 0) {
      const tops = [...new Set(all.map((n) => `${n.split('.')[0]}.`))].slice(0, 8).join(', ');
      const what = opts.prefix ? `no tensor name starts with --prefix '${opts.prefix}' (names start with ${tops || 'nothing'})` : 'the checkpoint holds no tensors';
      throw new InputError(`${input}: ${what}`);
    }
    let f16Overflow = 0;
    let done = 0;
    let written = 0;
    let lastPct = -1;
    const tensors: StreamedTensor[] = names.map((name) => {
      const { dtype, shape } = src.info(name);
      const keep = TO_SAFE[dtype];
      if (!keep) throw new InputError(`${input}: tensor '${name}' is ${dtype}, which safetensors files here cannot hold; leave it out with --prefix`);
      const float = FLOAT_DTYPES.has(dtype);
      const out: SafeDType = !float || opts.dtype === 'keep' ? keep : opts.dtype === 'f32' ? 'F32' : 'F16';
      return {
        name, dtype: out, shape: [...shape],
        bytes: async () => {
          const raw = await src.readBytes(name);
          let data = raw;
          if (out !== keep) {
            if (out === 'F32') {
              const f = bytesToF32(raw, dtype, input);
              data = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
            } else {
              const h = bytesToF16(raw, dtype, input);
              f16Overflow += h.overflow;
              data = new Uint8Array(h.bits.buffer, h.bits.byteOffset, h.bits.byteLength);
            }
          }
          done++;
          written += data.byteLength;
          const pct = Math.floor((100 * done) / names.length);
          if (pct >= lastPct + 5 || done === names.length) {
            lastPct = pct;
            log(`convert: ${done}/${names.length} tensors (${pct}%), ${formatBytes(written)} written`);
          }
          return data;
        },
      };
    });
    const total = tensors.reduce((s, t) => s + numelOf(t.shape) * SAFE_ITEMSIZE[t.dtype], 0);
    log(`convert: ${input} (${src.format}, ${all.length} tensors) -> ${output}: ${names.length} tensors, ${formatBytes(total)}`);
    await writeSafetensorsStreamed(output, tensors, { format: 'pt', source: basename(input) });
    if (f16Overflow > 0) log(`convert: warning: ${f16Overflow} finite values exceed the f16 range (65504) and were written as +-inf`);
    return { tensors: names.length, bytes: total, format: src.format, f16Overflow };
  } finally {
    await src.close();
  }
}

export const convertCommand: Command = {
  summary: 'convert a PyTorch checkpoint (.ckpt/.pth/.pt/.bin, Lightning) or safetensors file to safetensors',
  usage:
    'grounded-sd convert IN OUT.safetensors [--dtype f32|f16|keep] [--prefix P]\n\n' +
    'IN: a torch.save file (zip or legacy; a Lightning checkpoint contributes its state_dict) or a safetensors file.\n' +
    'Pickles are read with an allowlist of the classes torch.save writes; nothing in them is executed.\n' +
    '--dtype   float tensors as f32, f16 or as stored (keep, the default); integer and bool tensors are kept\n' +
    '--prefix  keep only tensors whose names start with P (names are written unchanged)',
  async run(argv) {
    const { positionals, values } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { dtype: { type: 'string', default: 'keep' }, prefix: { type: 'string' } },
    });
    if (positionals.length !== 2) {
      console.error(`grounded-sd convert: give an input checkpoint and an output .safetensors path (got ${positionals.length} arguments)\nusage: ${convertCommand.usage.split('\n\n')[0]}`);
      return 2;
    }
    const dtype = values.dtype as string;
    if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'keep') {
      console.error(`grounded-sd convert: --dtype must be f32, f16 or keep, got '${dtype}'\nusage: ${convertCommand.usage.split('\n\n')[0]}`);
      return 2;
    }
    const [input, output] = positionals;
    const r = await convertCheckpoint(input, output, { dtype, prefix: values.prefix, log: (m) => process.stderr.write(`${m}\n`) });
    console.log(`wrote ${output}: ${r.tensors} tensors, ${formatBytes(r.bytes)}`);
    return 0;
  },
};
