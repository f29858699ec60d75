// What a weights file looks like, from its names: the golden fixtures' real state dicts
// (diffusers UNet/VAE, transformers CLIP, the official Segmodule, the combined
// grounded_tiny file) and hand-written name lists for the other layouts.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { describeWeightNames } from '../../src/io/weight_kind.js';
import { goldenDir } from '../helpers.js';

async function names(dir: string, file = 'weights.safetensors'): Promise<string[]> {
  const f = await SafetensorsFile.open(join(dir, file));
  const out = [...f.tensors.keys()];
  await f.close();
  return out;
}

describe('describeWeightNames', () => {
  const golden = goldenDir();
  it.skipIf(!golden)('names the golden fixtures\' models from their state dicts', async () => {
    const g = golden as string;
    expect(describeWeightNames(await names(join(g, 'unet_tiny')))).toBe('a UNet (down_blocks.*, up_blocks.*)');
    expect(describeWeightNames(await names(join(g, 'vae_sd')))).toBe('a VAE (encoder.*, decoder.*)');
    expect(describeWeightNames(await names(join(g, 'clip_text')))).toBe('a CLIP text encoder (text_model.*)');
    expect(describeWeightNames(await names(join(g, 'grounding', 'B_small')))).toBe(
      'a grounding Segmodule (transfromer_decoder.*, low_feature_conv.*, highest_feature_mix_conv.*)',
    );
    expect(describeWeightNames(await names(join(g, 'grounded_tiny')))).toBe(
      'a combined checkpoint: segmodule.* (a grounding Segmodule), text_encoder.* (a CLIP text encoder), unet.* (a UNet), vae.* (a VAE)',
    );
  });

  it('recognises single-file checkpoints, LoRA files, empty and unknown layouts', () => {
    const ldm = ['model.diffusion_model.input_blocks.0.0.weight', 'first_stage_model.encoder.conv_in.weight', 'cond_stage_model.transformer.text_model.final_layer_norm.weight'];
    expect(describeWeightNames(ldm)).toBe('an LDM single-file checkpoint (model.diffusion_model.*)');
    expect(describeWeightNames([...ldm.slice(0, 2), 'cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight'])).toBe(
      'an SD 2.x single-file checkpoint (OpenCLIP text encoder) (cond_stage_model.model.*, model.diffusion_model.*)',
    );
    expect(describeWeightNames(['model.diffusion_model.out.2.weight', 'conditioner.embedders.0.transformer.text_model.x'])).toBe(
      'an SDXL single-file checkpoint (conditioner.embedders.*, model.diffusion_model.*)',
    );
    expect(describeWeightNames(['lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight'])).toBe('a LoRA adapter (lora_* names), not a full model');
    expect(describeWeightNames(['unet.down_blocks.0.attentions.0.to_q.lora_A.weight'])).toBe('a LoRA adapter (lora_* names), not a full model');
    expect(describeWeightNames(['__metadata__'])).toBe('an empty file (no tensors)');
    expect(describeWeightNames(['a.x', 'a.y', 'b.z', 'c.w', 'd.v', 'e.u', 'a.q'])).toBe(
      'an unrecognised layout: names start with a.* (3), b.* (1), c.* (1), d.* (1), and 1 more prefixes',
    );
  });
});
