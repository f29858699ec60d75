// `grounded-sd bench layers`: GPU time per layer of one pass of every model (bench/layers.ts)
// against the adapter's roofline and the matmul kernel row, all measured in this run.
// Progress goes to stderr, the markdown tables to stdout; --json, --markdown and --png
// write files atomically.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { benchLayers, type LayersOptions } from '../bench/layers.js';
import { benchDetectorLayers, type DetectorLayersOptions } from '../bench/layers_detector.js';
import { chartPng, formatMarkdown } from '../bench/layers_report.js';
import { debugFlags } from '../gpu/debug.js';
import { InputError } from '../gpu/errors.js';
import { Runtime } from '../gpu/runtime.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { Command } from './main.js';

const USAGE = 'grounded-sd bench layers --model sd15|tiny|PATH --size S [--backward] [--dtype f32|f16] [--warmup N] [--classes N] [--json FILE] [--markdown FILE] [--png FILE]\n'
  + '       grounded-sd bench layers --model detector --detector CKPT|random [--detector-arch v1|v2] --size S [--images N] [--max-detections 100] [--warmup N] [--json FILE] [--markdown FILE] [--png FILE]';

function count(name: string, v: string | undefined, fallback: number, min: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InputError(`--${name} needs an integer >= ${min}, got '${v}'`);
  return n;
}

export const benchLayersCommand: Command = {
  summary: 'GPU time, FLOPs and bytes of every layer of CLIP, the UNet, the VAE and the grounding module, or of the Mask R-CNN detector',
  usage: `${USAGE}\n\n` + [
    '  --model M       sd15 or tiny (deterministic random weights, no file needed), or a diffusers',
    '                  folder / single-file checkpoint with real weights (default sd15); detector: the',
    '                  built-in Mask R-CNN alone, split into transform, backbone, FPN, RPN, box head,',
    '                  mask head and post-processing, plus its throughput in images per second',
    '  --detector W    detector weights: a torchvision maskrcnn_resnet50_fpn(_v2) checkpoint (.pth or',
    '                  .safetensors) or random (deterministic, no file)',
    '  --detector-arch v1 or v2 (default: from the checkpoint; v1 for random)',
    '  --images N      detector: unprofiled detect() calls timed for images per second (default 1)',
    '  --max-detections N  detector: box_detections_per_img (default 100, torchvision\'s); the mask',
    '                  head runs on each detection (~1.06 GFLOP each)',
    '  --size S        image side in pixels, a multiple of 8 (default 512; tiny: 64; detector: 320,',
    '                  any side >= 32, the transform set not to resize it)',
    '  --backward      also the grounding module\'s loss, backward and Adam step',
    '  --dtype D       f32 (default) or f16 (CLIP, UNet and VAE in f16; the grounding module',
    '                  stays f32; needs the adapter\'s shader-f16)',
    '  --warmup N      unprofiled passes of each model first (default 0: one pass)',
    '  --classes N     classes of the grounding module\'s sample (default 2)',
    '  --json FILE     { "rows": [...], "summary": {...} }',
    '  --markdown FILE the tables printed to stdout',
    '  --png FILE      bar chart of GPU time share per op kind per model',
  ].join('\n'),
  async run(argv) {
    let opts: LayersOptions | undefined;
    let detOpts: DetectorLayersOptions | undefined;
    const parse = () => parseArgs({
      args: argv,
      options: {
        model: { type: 'string' }, size: { type: 'string' }, backward: { type: 'boolean' }, dtype: { type: 'string' },
        warmup: { type: 'string' }, classes: { type: 'string' }, json: { type: 'string' }, markdown: { type: 'string' }, png: { type: 'string' },
        detector: { type: 'string' }, 'detector-arch': { type: 'string' }, images: { type: 'string' }, 'max-detections': { type: 'string' },
      },
    }).values;
    let values: ReturnType<typeof parse>;
    try {
      values = parse();
      const model = values.model ?? 'sd15';
      const detectorOnly = ['detector', 'detector-arch', 'images', 'max-detections'].filter((k) => values[k as keyof typeof values] !== undefined);
      if (model !== 'detector' && detectorOnly.length) throw new InputError(`${detectorOnly.map((k) => `--${k}`).join(', ')}: only with --model detector`);
      if (model === 'detector') {
        const sdOnly = ['backward', 'dtype', 'classes'].filter((k) => values[k as keyof typeof values] !== undefined);
        if (sdOnly.length) throw new InputError(`${sdOnly.map((k) => `--${k}`).join(', ')}: not with --model detector (it runs in f32, forward only)`);
        if (values.detector === undefined) throw new InputError('--model detector needs --detector CKPT (a torchvision Mask R-CNN checkpoint) or --detector random');
        const arch = values['detector-arch'];
        if (arch !== undefined && arch !== 'v1' && arch !== 'v2') throw new InputError(`--detector-arch must be v1 or v2, got '${arch}'`);
        if (values.detector !== 'random' && !existsSync(values.detector)) throw new InputError(`--detector ${values.detector} does not exist; give a Mask R-CNN checkpoint or --detector random`);
        detOpts = {
          detector: values.detector, arch, size: count('size', values.size, 320, 32), warmup: count('warmup', values.warmup, 0, 0), images: count('images', values.images, 1, 1),
          maxDetections: values['max-detections'] === undefined ? undefined : count('max-detections', values['max-detections'], 100, 1),
          log: (m) => process.stderr.write(`${m}\n`),
        };
      }
      if (!detOpts) {
        const dtype = values.dtype ?? 'f32';
        if (dtype !== 'f32' && dtype !== 'f16') throw new InputError(`--dtype must be f32 or f16, got '${dtype}'`);
        opts = {
          model,
          size: count('size', values.size, model === 'tiny' ? 64 : 512, 8),
          backward: values.backward ?? false,
          dtype,
          warmup: count('warmup', values.warmup, 0, 0),
          classes: count('classes', values.classes, 2, 1),
          log: (m) => process.stderr.write(`${m}\n`),
        };
      }
    } catch (e) {
      console.error(`grounded-sd bench layers: ${(e as Error).message}\nusage: ${USAGE}`);
      return 2;
    }
    if (debugFlags().validate) process.stderr.write('warning: GROUNDED_SD_VALIDATE=1 puts every dispatch in an error scope; host times will be slow\n');
    const rt = await Runtime.create();
    try {
      const report = detOpts ? await benchDetectorLayers(rt, detOpts) : await benchLayers(rt, opts as LayersOptions);
      if (report.summary.timing === 'wall') process.stderr.write('note: the adapter has no timestamp-query; layer times are per-scope wall time (see summary.timing_note)\n');
      const md = formatMarkdown(report);
      console.log(md);
      const written: string[] = [];
      if (values.json) {
        await writeFileAtomic(values.json, `${JSON.stringify(report, null, 1)}\n`);
        written.push(values.json);
      }
      if (values.markdown) {
        await writeFileAtomic(values.markdown, md);
        written.push(values.markdown);
      }
      if (values.png) {
        await writeFileAtomic(values.png, chartPng(report));
        written.push(values.png);
      }
      if (written.length) process.stderr.write(`wrote ${written.join(', ')}\n`);
      return 0;
    } finally {
      rt.destroy();
    }
  },
};
