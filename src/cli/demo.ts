// `grounded-sd demo`: the whole grounded chain in one command, with no download: the
// built-in tiny random-weight SD and a random grounding module fitting it generate an
// image, its masks, DAAM maps, the overlay and result.json. It says plainly that tiny
// weights are random (the pictures are noise) and how to run it on real weights.
import { parseArgs } from 'node:util';
import { UsageError } from '../gpu/errors.js';
import { Runtime } from '../gpu/runtime.js';
import { MODEL_DTYPES } from '../models/precision.js';
import { choiceOption, joinNegativeValues, numberOption } from './args.js';
import { checkOutputs } from './grounded_generate.js';
import { runGrounded, type GroundedRunSpec } from './grounded_run.js';
import type { Command } from './main.js';

export const DEMO_PROMPT = 'a photograph of a dog and a cat';
/** Steps of a tiny-model demo: enough to show the schedule, seconds on a software adapter. */
export const TINY_DEMO_STEPS = 10;

export const TINY_NOTICE =
  'Note: --model tiny is a built-in model with random weights, so these pictures are noise: they show every file\n' +
  'the grounded chain writes, not what it finds. For real results give Stable Diffusion 1.x weights and the\n' +
  'grounding checkpoint: grounded-sd demo --model /path/to/sd15 --grounding /path/to/grounding.pth (see weights/README.md).';

const USAGE = 'grounded-sd demo [--out out/demo] [--model tiny|PATH] [--grounding CKPT] [--tokenizer DIR] [--prompt TEXT] [--steps N] [--seed S] [--dtype f32|f16]';

export const demoCommand: Command = {
  summary: 'grounded generation end to end (image, masks, DAAM maps, overlay, result.json); tiny random model by default',
  usage: `${USAGE}\n\n` + [
    '  --out DIR         where the image folder goes (default out/demo)',
    '  --model PATH      SD 1.x weights (diffusers folder or single file; default: tiny, random weights)',
    '  --grounding CKPT  the grounding checkpoint (needed with --model PATH; tiny: a random module)',
    `  --prompt TEXT     default "${DEMO_PROMPT}"`,
    `  --steps N         default ${TINY_DEMO_STEPS} with the tiny model, 50 (the official setting) otherwise`,
    '  --dtype f32|f16   precision of the SD models (default f32; f16 needs the adapter\'s shader-f16)',
  ].join('\n'),
  async run(argv) {
    const { values } = parseArgs({
      args: joinNegativeValues(argv, ['steps', 'seed']),
      options: {
        out: { type: 'string' }, model: { type: 'string' }, grounding: { type: 'string' }, tokenizer: { type: 'string' },
        prompt: { type: 'string' }, steps: { type: 'string' }, seed: { type: 'string' }, dtype: { type: 'string' },
      },
      strict: true,
    });
    const model = values.model ?? 'tiny';
    const tiny = model === 'tiny';
    if (!tiny && values.grounding === undefined) {
      throw new UsageError('--model PATH needs --grounding CKPT (the grounding checkpoint for that model; see weights/README.md)');
    }
    if (!tiny && values.grounding === 'tiny') throw new UsageError('--grounding tiny is a random module for --model tiny only; give the grounding checkpoint');
    if (values.prompt !== undefined && values.prompt.trim() === '') throw new UsageError('--prompt must not be empty');
    const spec: GroundedRunSpec = {
      model, tokenizer: values.tokenizer, grounding: values.grounding ?? 'tiny', daam: true,
      prompt: values.prompt ?? DEMO_PROMPT, negativePrompt: '',
      steps: numberOption('steps', values.steps, tiny ? TINY_DEMO_STEPS : 50, { integer: true, min: 1, max: 1000, why: 'SD 1.x schedulers have 1000 training timesteps' }),
      guidanceScale: 7.5,
      seed: numberOption('seed', values.seed, 0, { integer: true, min: 0, max: 0xffffffff }),
      batch: 1, batchNorm: 'official', threshold: 0.5,
      out: values.out ?? 'out/demo',
      dtype: choiceOption('dtype', values.dtype, MODEL_DTYPES) ?? 'f32',
    };
    checkOutputs(spec);
    const rt = await Runtime.create();
    try {
      const folders = await runGrounded(rt, spec, (s) => process.stderr.write(s));
      for (const f of folders) console.log(f);
      if (tiny) console.log(TINY_NOTICE);
      return 0;
    } finally {
      rt.destroy();
    }
  },
};
