// The one table from original LDM / CompVis single-file SD 1.x checkpoint names to
// diffusers names (as diffusers' convert_original_stable_diffusion_to_diffusers does).
// Given a checkpoint name, ldmToDiffusers() returns which component it belongs to and its
// diffusers name, or null for names diffusers does not use (EMA copies, loss buffers).

export type SdComponent = 'unet' | 'vae' | 'text_encoder';

export interface MappedName {
  component: SdComponent;
  name: string;
}

const RESNET_UNET: [RegExp, string][] = [
  [/^in_layers\.0\./, 'norm1.'],
  [/^in_layers\.2\./, 'conv1.'],
  [/^emb_layers\.1\./, 'time_emb_proj.'],
  [/^out_layers\.0\./, 'norm2.'],
  [/^out_layers\.3\./, 'conv2.'],
  [/^skip_connection\./, 'conv_shortcut.'],
];

function renameResnet(rest: string): string {
  for (const [re, to] of RESNET_UNET) if (re.test(rest)) return rest.replace(re, to);
  return rest;
}

/** Attention modules (SpatialTransformer) keep their inner names in diffusers. */
const isAttentionPart = (rest: string) => /^(norm|proj_in|proj_out|transformer_blocks)\./.test(rest);

function mapUnet(name: string, layersPerBlock: number): string | null {
  const L = layersPerBlock;
  let m: RegExpMatchArray | null;
  if ((m = name.match(/^time_embed\.([02])\.(.*)$/))) return `time_embedding.linear_${m[1] === '0' ? 1 : 2}.${m[2]}`;
  if ((m = name.match(/^input_blocks\.0\.0\.(.*)$/))) return `conv_in.${m[1]}`;
  if ((m = name.match(/^out\.0\.(.*)$/))) return `conv_norm_out.${m[1]}`;
  if ((m = name.match(/^out\.2\.(.*)$/))) return `conv_out.${m[1]}`;
  if ((m = name.match(/^input_blocks\.(\d+)\.(\d+)\.(.*)$/))) {
    const i = Number(m[1]);
    const block = Math.floor((i - 1) / (L + 1));
    const layer = (i - 1) % (L + 1);
    const rest = m[3];
    if (layer === L) {
      const op = rest.match(/^op\.(.*)$/);
      return op ? `down_blocks.${block}.downsamplers.0.conv.${op[1]}` : null;
    }
    if (m[2] === '0') return `down_blocks.${block}.resnets.${layer}.${renameResnet(rest)}`;
    return `down_blocks.${block}.attentions.${layer}.${rest}`;
  }
  if ((m = name.match(/^middle_block\.(\d)\.(.*)$/))) {
    const rest = m[2];
    if (m[1] === '1') return `mid_block.attentions.0.${rest}`;
    return `mid_block.resnets.${m[1] === '0' ? 0 : 1}.${renameResnet(rest)}`;
  }
  if ((m = name.match(/^output_blocks\.(\d+)\.(\d+)\.(.*)$/))) {
    const i = Number(m[1]);
    const block = Math.floor(i / (L + 1));
    const layer = i % (L + 1);
    const rest = m[3];
    if (m[2] === '0') return `up_blocks.${block}.resnets.${layer}.${renameResnet(rest)}`;
    if (isAttentionPart(rest)) return `up_blocks.${block}.attentions.${layer}.${rest}`;
    const conv = rest.match(/^conv\.(.*)$/);
    return conv ? `up_blocks.${block}.upsamplers.0.conv.${conv[1]}` : null;
  }
  return null;
}

function mapVae(name: string, numBlocks: number): string | null {
  let m: RegExpMatchArray | null;
  if (/^(quant_conv|post_quant_conv)\./.test(name)) return name;
  if ((m = name.match(/^(encoder|decoder)\.(conv_in|conv_out)\.(.*)$/))) return name;
  if ((m = name.match(/^(encoder|decoder)\.norm_out\.(.*)$/))) return `${m[1]}.conv_norm_out.${m[2]}`;
  const resnet = (rest: string) => rest.replace(/^nin_shortcut\./, 'conv_shortcut.');
  if ((m = name.match(/^encoder\.down\.(\d+)\.block\.(\d+)\.(.*)$/))) return `encoder.down_blocks.${m[1]}.resnets.${m[2]}.${resnet(m[3])}`;
  if ((m = name.match(/^encoder\.down\.(\d+)\.downsample\.conv\.(.*)$/))) return `encoder.down_blocks.${m[1]}.downsamplers.0.conv.${m[2]}`;
  if ((m = name.match(/^decoder\.up\.(\d+)\.block\.(\d+)\.(.*)$/))) {
    return `decoder.up_blocks.${numBlocks - 1 - Number(m[1])}.resnets.${m[2]}.${resnet(m[3])}`;
  }
  if ((m = name.match(/^decoder\.up\.(\d+)\.upsample\.conv\.(.*)$/))) {
    return `decoder.up_blocks.${numBlocks - 1 - Number(m[1])}.upsamplers.0.conv.${m[2]}`;
  }
  if ((m = name.match(/^(encoder|decoder)\.mid\.block_([12])\.(.*)$/))) return `${m[1]}.mid_block.resnets.${Number(m[2]) - 1}.${resnet(m[3])}`;
  if ((m = name.match(/^(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(.*)$/))) {
    const to: Record<string, string> = { norm: 'group_norm', q: 'to_q', k: 'to_k', v: 'to_v', proj_out: 'to_out.0' };
    return `${m[1]}.mid_block.attentions.0.${to[m[2]]}.${m[3]}`;
  }
  return null;
}

export interface LdmLayout {
  /** UNet layers_per_block (2 for SD 1.x). */
  layersPerBlock: number;
  /** VAE number of up/down blocks (4 for SD 1.x). */
  vaeBlocks: number;
}

export const SD1_LAYOUT: LdmLayout = { layersPerBlock: 2, vaeBlocks: 4 };

export function ldmToDiffusers(name: string, layout: LdmLayout = SD1_LAYOUT): MappedName | null {
  let m: RegExpMatchArray | null;
  if ((m = name.match(/^model\.diffusion_model\.(.*)$/))) {
    const n = mapUnet(m[1], layout.layersPerBlock);
    return n ? { component: 'unet', name: n } : null;
  }
  if ((m = name.match(/^first_stage_model\.(.*)$/))) {
    const n = mapVae(m[1], layout.vaeBlocks);
    return n ? { component: 'vae', name: n } : null;
  }
  if ((m = name.match(/^cond_stage_model\.transformer\.(.*)$/))) {
    const rest = m[1].startsWith('text_model.') ? m[1] : `text_model.${m[1]}`;
    if (/position_ids$/.test(rest)) return null;
    return { component: 'text_encoder', name: rest };
  }
  return null;
}

const RESNET_UNET_INV: [RegExp, string][] = [
  [/^norm1\./, 'in_layers.0.'],
  [/^conv1\./, 'in_layers.2.'],
  [/^time_emb_proj\./, 'emb_layers.1.'],
  [/^norm2\./, 'out_layers.0.'],
  [/^conv2\./, 'out_layers.3.'],
  [/^conv_shortcut\./, 'skip_connection.'],
];

function unetToLdm(name: string, L: number, upHasAttention: (block: number) => boolean): string | null {
  const resnet = (rest: string) => {
    for (const [re, to] of RESNET_UNET_INV) if (re.test(rest)) return rest.replace(re, to);
    return rest;
  };
  let m: RegExpMatchArray | null;
  if ((m = name.match(/^time_embedding\.linear_([12])\.(.*)$/))) return `time_embed.${m[1] === '1' ? 0 : 2}.${m[2]}`;
  if ((m = name.match(/^conv_in\.(.*)$/))) return `input_blocks.0.0.${m[1]}`;
  if ((m = name.match(/^conv_norm_out\.(.*)$/))) return `out.0.${m[1]}`;
  if ((m = name.match(/^conv_out\.(.*)$/))) return `out.2.${m[1]}`;
  if ((m = name.match(/^down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$/))) return `input_blocks.${1 + Number(m[1]) * (L + 1) + Number(m[2])}.0.${resnet(m[3])}`;
  if ((m = name.match(/^down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)$/))) return `input_blocks.${1 + Number(m[1]) * (L + 1) + Number(m[2])}.1.${m[3]}`;
  if ((m = name.match(/^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)$/))) return `input_blocks.${1 + Number(m[1]) * (L + 1) + L}.0.op.${m[2]}`;
  if ((m = name.match(/^mid_block\.resnets\.([01])\.(.*)$/))) return `middle_block.${m[1] === '0' ? 0 : 2}.${resnet(m[2])}`;
  if ((m = name.match(/^mid_block\.attentions\.0\.(.*)$/))) return `middle_block.1.${m[1]}`;
  if ((m = name.match(/^up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$/))) return `output_blocks.${Number(m[1]) * (L + 1) + Number(m[2])}.0.${resnet(m[3])}`;
  if ((m = name.match(/^up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)$/))) return `output_blocks.${Number(m[1]) * (L + 1) + Number(m[2])}.1.${m[3]}`;
  if ((m = name.match(/^up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)$/))) {
    const b = Number(m[1]);
    return `output_blocks.${b * (L + 1) + L}.${upHasAttention(b) ? 2 : 1}.conv.${m[2]}`;
  }
  return null;
}

function vaeToLdm(name: string, n: number): string | null {
  let m: RegExpMatchArray | null;
  const resnet = (rest: string) => rest.replace(/^conv_shortcut\./, 'nin_shortcut.');
  if (/^(quant_conv|post_quant_conv)\./.test(name) || /^(encoder|decoder)\.(conv_in|conv_out)\./.test(name)) return name;
  if ((m = name.match(/^(encoder|decoder)\.conv_norm_out\.(.*)$/))) return `${m[1]}.norm_out.${m[2]}`;
  if ((m = name.match(/^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$/))) return `encoder.down.${m[1]}.block.${m[2]}.${resnet(m[3])}`;
  if ((m = name.match(/^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)$/))) return `encoder.down.${m[1]}.downsample.conv.${m[2]}`;
  if ((m = name.match(/^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$/))) return `decoder.up.${n - 1 - Number(m[1])}.block.${m[2]}.${resnet(m[3])}`;
  if ((m = name.match(/^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)$/))) return `decoder.up.${n - 1 - Number(m[1])}.upsample.conv.${m[2]}`;
  if ((m = name.match(/^(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.*)$/))) return `${m[1]}.mid.block_${Number(m[2]) + 1}.${resnet(m[3])}`;
  if ((m = name.match(/^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.*)$/))) {
    const to: Record<string, string> = { group_norm: 'norm', to_q: 'q', to_k: 'k', to_v: 'v', 'to_out.0': 'proj_out' };
    return `${m[1]}.mid.attn_1.${to[m[2]]}.${m[3]}`;
  }
  return null;
}

/** diffusers name -> LDM checkpoint name (building single-file checkpoints in tests and
 *  export). `upHasAttention(b)` says whether UNet up block b has attentions (its
 *  upsampler then sits at index 2 of the LDM output block). */
export function diffusersToLdm(
  component: SdComponent,
  name: string,
  layout: LdmLayout = SD1_LAYOUT,
  upHasAttention: (block: number) => boolean = () => true,
): string | null {
  if (component === 'unet') {
    const n = unetToLdm(name, layout.layersPerBlock, upHasAttention);
    return n ? `model.diffusion_model.${n}` : null;
  }
  if (component === 'vae') {
    const n = vaeToLdm(name, layout.vaeBlocks);
    return n ? `first_stage_model.${n}` : null;
  }
  return name.startsWith('text_model.') ? `cond_stage_model.transformer.${name}` : null;
}
