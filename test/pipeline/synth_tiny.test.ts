// `grounded-sd synth` end to end on the built-in tiny model with a random grounding module
// (GPU, lavapipe in CI): every stored label map equals the float64 rule applied to logits
// recomputed here by generateGrounded with the sample's prompt, classes and seed (module
// state restored per sample, as the command does), the stored image equals the generated
// one, a rerun generates nothing, and the folder exports as VOC and COCO.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportCommand } from '../../src/cli/export.js';
import { runCommand } from '../../src/cli/main.js';
import { synthCommand } from '../../src/cli/synth.js';
import { decodePng } from '../../src/io/png.js';
import { StableDiffusion } from '../../src/models/sd.js';
import { disposeParams } from '../../src/nn/module.js';
import { generateGrounded, restoreGroundingState, snapshotGroundingState } from '../../src/pipeline/grounded.js';
import { BUILTIN_TINY_CONFIGS, randomGroundingModule } from '../../src/pipeline/grounding_module.js';
import { readManifest } from '../../src/pipeline/synth/index.js';
import { capture } from '../cli/capture.js';
import { runtime } from '../helpers.js';
import { paletteIndices, referenceLabels } from './synth_helpers.js';

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'gsd-synth-tiny-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('grounded-sd synth (tiny model, GPU)', () => {
  it('stores label maps equal to the rule on recomputed logits; resumes; exports', async () => {
    const vocab = join(tmp, 'vocab.txt');
    await writeFile(vocab, 'dog\ncat\ntrain\n');
    const out = join(tmp, 'synth');
    // A low threshold makes the random module's masks large enough to overlap.
    const threshold = 0.3;
    const args = ['--model', 'tiny', '--grounding', 'tiny', '--vocab', vocab, '--per-class', '1', '--pairs', '1', '--steps', '2', '--threshold', String(threshold), '--out', out];
    const r = await capture(() => runCommand('synth', synthCommand, args));
    expect(r.code, r.err.join('\n') + r.progress).toBe(0);
    expect(r.out).toEqual([out]);
    expect(r.progress).toMatch(/6 samples planned, 6 in this shard, 0 already finished, 6 to generate/);
    const read = await readManifest(out);
    expect([...read.records.keys()]).toEqual(['c000-00000', 'c001-00000', 'c002-00000', 'p000-001-00000', 'p000-002-00000', 'p001-002-00000']);

    const rt = await runtime();
    const sd = StableDiffusion.random(rt, BUILTIN_TINY_CONFIGS, 0);
    const seg = randomGroundingModule(rt, sd, 64, 0);
    try {
      const initial = await snapshotGroundingState(seg);
      let contested = 0;
      let labelled = 0;
      for (const rec of read.records.values()) {
        await restoreGroundingState(seg, initial);
        const g = await generateGrounded(sd, seg, { prompt: rec.prompt, classes: rec.classes, seed: rec.seed, steps: 2, guidanceScale: 7.5 });
        const img = g.images[0];
        const want = referenceLabels(img.logits, rec.labels, threshold);
        const got = paletteIndices(await readFile(join(out, rec.label)));
        expect([got.width, got.height]).toEqual([64, 64]);
        expect(got.indices, rec.id).toEqual(want);
        expect(decodePng(await readFile(join(out, rec.image))).rgba, rec.id).toEqual(img.rgba);
        labelled += want.filter((v) => v !== 0).length;
        const cut = Math.log(threshold / (1 - threshold));
        if (img.logits.length === 2) contested += img.logits[0].filter((v, p) => v > cut && img.logits[1][p] > cut).length;
      }
      expect(labelled).toBeGreaterThan(0);
      expect(contested).toBeGreaterThan(0);
    } finally {
      disposeParams(seg);
      sd.dispose();
    }

    const again = await capture(() => runCommand('synth', synthCommand, args));
    expect(again.code).toBe(0);
    expect(again.progress).toMatch(/0 samples generated, 6 already there/);
    expect(again.progress).not.toMatch(/models ready/);

    const voc = join(tmp, 'voc');
    expect((await capture(() => runCommand('export', exportCommand, ['voc', out, voc]))).code).toBe(0);
    expect((await readdir(join(voc, 'JPEGImages'))).length).toBe(6);
    const coco = join(tmp, 'coco');
    expect((await capture(() => runCommand('export', exportCommand, ['coco', out, coco]))).code).toBe(0);
    const docs = await Promise.all(['train', 'val'].map(async (n) => JSON.parse(await readFile(join(coco, 'annotations', `instances_${n}.json`), 'utf8'))));
    expect(docs.reduce((a, d) => a + d.images.length, 0)).toBe(6);
  });
});
