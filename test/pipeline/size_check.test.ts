// Image-size checks before generation: SD 1.5 and the tiny model against lavapipe-like
// limits, without an adapter. Figures are recomputed here from the SD 1.5 architecture
// (published parameter counts, channel widths) rather than taken from the checker.
import { describe, expect, it } from 'vitest';
import { formatBytes, InputError, LimitError } from '../../src/gpu/errors.js';
import { CLIPTextModel } from '../../src/models/clip.js';
import { SD15_CONFIGS, TINY_CONFIGS, type SdConfigs } from '../../src/models/sd.js';
import { UNet2DConditionModel } from '../../src/models/unet/index.js';
import { AutoencoderKL } from '../../src/models/vae/vae.js';
import { checkGenerationSize, estimateGenerationBytes, generationModel, sizeProblems, type DeviceLimits } from '../../src/pipeline/size_check.js';

const LAVAPIPE: DeviceLimits = {
  maxBufferSize: 2 ** 32 - 1,
  maxStorageBufferBindingSize: 2 ** 27,
  minStorageBufferOffsetAlignment: 16,
  maxTextureDimension2D: 8192,
  memoryBytes: 23 * 2 ** 30,
  adapterName: 'llvmpipe (test)',
};

const model = (c: SdConfigs) => generationModel({ textEncoder: new CLIPTextModel(c.text_encoder), unet: new UNet2DConditionModel(c.unet), vae: new AutoencoderKL(c.vae) });
const sd15 = model(SD15_CONFIGS);
const tiny = model(TINY_CONFIGS);

function thrown(f: () => void): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

describe('generation size checks', () => {
  it('counts SD 1.5 weights as published (UNet 859,520,964 + VAE 83,653,863 + CLIP text 123,060,480 params, f32)', () => {
    expect(sd15.weightBytes).toBe(4 * (859_520_964 + 83_653_863 + 123_060_480));
  });

  it('SD 1.5 at 512x512 up to batch 8, and 768x768, fit lavapipe', () => {
    for (const batchSize of [1, 2, 4, 8]) expect(sizeProblems(sd15, { height: 512, width: 512, batchSize }, LAVAPIPE), `batch ${batchSize}`).toEqual([]);
    expect(sizeProblems(sd15, { height: 768, width: 768, batchSize: 1 }, LAVAPIPE)).toEqual([]);
    expect(() => checkGenerationSize(sd15, { height: 512, width: 512, batchSize: 1 }, LAVAPIPE)).not.toThrow();
  });

  it('8x100000: refused by the side limit, and by the VAE row band when sides may be larger', () => {
    const s = { height: 8, width: 100000, batchSize: 1 };
    const err = thrown(() => checkGenerationSize(sd15, s, LAVAPIPE));
    expect(err).toBeInstanceOf(LimitError);
    expect(err.message).toContain("generate: a 8x100000 image (batch 1) does not fit llvmpipe (test): width 100000 is over the adapter's largest image side, maxTextureDimension2D 8192");
    // The full-resolution decoder convolutions read 256 channels (up block 2's output):
    // one output row needs 3 input rows of (100000 + 2 pad + 16 slack) f32 values.
    const band = 256 * 3 * (100000 + 18) * 4;
    const wide = sizeProblems(sd15, s, { ...LAVAPIPE, maxTextureDimension2D: 1 << 20 });
    expect(wide).toContain(`VAE decoder level 3: one row band of a 256-channel convolution 100000 wide takes ${formatBytes(band)}, over maxStorageBufferBindingSize 128.0 MiB`);
  });

  it('100000x100000 names the limit and the largest size that fits, which does fit while 8 px more does not', () => {
    const s = { height: 100000, width: 100000, batchSize: 1 };
    const err = thrown(() => checkGenerationSize(sd15, s, LAVAPIPE));
    expect(err).toBeInstanceOf(LimitError);
    const m = err.message.match(/the largest that fits at this aspect ratio is (\d+)x(\d+)$/);
    expect(m, err.message).not.toBeNull();
    const side = Number((m as RegExpMatchArray)[1]);
    expect(side % 8).toBe(0);
    expect(sizeProblems(sd15, { height: side, width: side, batchSize: 1 }, LAVAPIPE)).toEqual([]);
    expect(sizeProblems(sd15, { height: side + 8, width: side + 8, batchSize: 1 }, LAVAPIPE).length).toBeGreaterThan(0);
    // What stops it on lavapipe: the level-0 UNet attention binds its whole q/k/v,
    // 2 CFG rows x (side/8)^2 tokens x 320 channels x 4 bytes, past 128 MiB.
    const tokens = ((side + 8) / 8) ** 2;
    expect(2 * tokens * 320 * 4).toBeGreaterThan(2 ** 27);
    expect(sizeProblems(sd15, { height: side + 8, width: side + 8, batchSize: 1 }, LAVAPIPE)).toEqual([
      `UNet level 0: attention over ${tokens} tokens binds ${formatBytes(2 * tokens * 320 * 4)} per q/k/v (batch 2), over maxStorageBufferBindingSize 128.0 MiB`,
    ]);
  });

  it('sides that are not positive multiples of 8 are InputErrors with a suggestion', () => {
    const err = thrown(() => checkGenerationSize(tiny, { height: 50, width: 64, batchSize: 1 }, LAVAPIPE));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toBe('generate: height 50 must be a positive multiple of 8; try 48');
    expect(thrown(() => checkGenerationSize(tiny, { height: 0, width: 4, batchSize: 1 }, LAVAPIPE)).message).toBe(
      'generate: height 0 must be a positive multiple of 8; try 8; width 4 must be a positive multiple of 8; try 8',
    );
  });

  it('the memory estimate counts the weights and grows with the image; past the machine it is refused', () => {
    const small = estimateGenerationBytes(sd15, { height: 8, width: 8, batchSize: 1 });
    expect(small).toBeGreaterThan(sd15.weightBytes);
    expect(small - sd15.weightBytes).toBeLessThan(2 ** 20);
    // VAE full-resolution maps: 4 live [1, 256, 512, 512] f32 tensors at least.
    expect(estimateGenerationBytes(sd15, { height: 512, width: 512, batchSize: 1 }) - sd15.weightBytes).toBeGreaterThan(4 * 256 * 512 * 512 * 4);
    const err = thrown(() => checkGenerationSize(sd15, { height: 512, width: 512, batchSize: 1 }, { ...LAVAPIPE, memoryBytes: 2 ** 32 }));
    expect(err).toBeInstanceOf(LimitError);
    expect(err.message).toMatch(/weights and activations need about [\d.]+ GiB, more than the 4\.00 GiB of memory this machine has/);
  });
});
