// The LDM <-> diffusers name table, checked on the full name lists of the golden SD-structured
// fixtures: every diffusers name maps to an LDM name and back to itself, and the LDM names
// have the structure of the original checkpoints.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffusersToLdm, ldmToDiffusers, type LdmLayout, type SdComponent } from '../../src/io/ldm_keys.js';
import { goldenDir } from '../helpers.js';

function headerNames(path: string): string[] {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  return Object.keys(JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))).filter((k) => k !== '__metadata__');
}

function roundTrip(component: SdComponent, names: string[], layout: LdmLayout) {
  const upAttn = (b: number) => names.some((n) => n.startsWith(`up_blocks.${b}.attentions.`));
  const ldm = new Set<string>();
  for (const name of names) {
    const l = diffusersToLdm(component, name, layout, upAttn);
    expect(l, `no LDM name for ${name}`).not.toBeNull();
    ldm.add(l as string);
    expect(ldmToDiffusers(l as string, layout)).toEqual({ component, name });
  }
  expect(ldm.size).toBe(names.length);
  return ldm;
}

describe('LDM key table', () => {
  it('maps hand-picked SD 1.x names', () => {
    expect(ldmToDiffusers('model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight')).toEqual({
      component: 'unet', name: 'down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight' });
    expect(ldmToDiffusers('model.diffusion_model.input_blocks.3.0.op.weight')).toEqual({ component: 'unet', name: 'down_blocks.0.downsamplers.0.conv.weight' });
    expect(ldmToDiffusers('model.diffusion_model.output_blocks.2.1.conv.bias')).toEqual({ component: 'unet', name: 'up_blocks.0.upsamplers.0.conv.bias' });
    expect(ldmToDiffusers('model.diffusion_model.output_blocks.5.2.conv.weight')).toEqual({ component: 'unet', name: 'up_blocks.1.upsamplers.0.conv.weight' });
    expect(ldmToDiffusers('model.diffusion_model.output_blocks.11.0.skip_connection.weight')).toEqual({ component: 'unet', name: 'up_blocks.3.resnets.2.conv_shortcut.weight' });
    expect(ldmToDiffusers('model.diffusion_model.middle_block.2.emb_layers.1.weight')).toEqual({ component: 'unet', name: 'mid_block.resnets.1.time_emb_proj.weight' });
    expect(ldmToDiffusers('first_stage_model.decoder.up.0.block.2.nin_shortcut.weight')).toEqual({ component: 'vae', name: 'decoder.up_blocks.3.resnets.2.conv_shortcut.weight' });
    expect(ldmToDiffusers('first_stage_model.encoder.mid.attn_1.proj_out.weight')).toEqual({ component: 'vae', name: 'encoder.mid_block.attentions.0.to_out.0.weight' });
    expect(ldmToDiffusers('cond_stage_model.transformer.text_model.final_layer_norm.bias')).toEqual({ component: 'text_encoder', name: 'text_model.final_layer_norm.bias' });
    expect(ldmToDiffusers('cond_stage_model.transformer.embeddings.token_embedding.weight')).toEqual({ component: 'text_encoder', name: 'text_model.embeddings.token_embedding.weight' });
    expect(ldmToDiffusers('model_ema.decay')).toBeNull();
  });

  const unetDir = goldenDir('unet_sd');
  const vaeDir = goldenDir('vae_sd');
  const clipDir = goldenDir('clip_text');
  it.skipIf(!unetDir || !vaeDir || !clipDir)('round-trips every weight name of the SD-structured golden UNet and VAE', () => {
    const unet = headerNames(join(unetDir as string, 'weights.safetensors'));
    const ldm = roundTrip('unet', unet, { layersPerBlock: 2, vaeBlocks: 4 });
    // SD 1.x structure: 12 input blocks, 3 middle, 12 output blocks.
    const blocks = (kind: string) => new Set([...ldm].map((n) => n.match(new RegExp(`${kind}\\.(\\d+)\\.`))?.[1]).filter(Boolean)).size;
    expect(blocks('input_blocks')).toBe(12);
    expect(blocks('output_blocks')).toBe(12);
    expect(blocks('middle_block')).toBe(3);
    const vae = headerNames(join(vaeDir as string, 'weights.safetensors'));
    roundTrip('vae', vae, { layersPerBlock: 2, vaeBlocks: 4 });
    roundTrip('text_encoder', headerNames(join(clipDir as string, 'weights.safetensors')), { layersPerBlock: 2, vaeBlocks: 4 });
  });
});
