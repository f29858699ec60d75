// What a weights file holds, guessed from its tensor names, for error messages when a
// file does not fit the model it was given to ("this looks like a VAE (encoder.*,
// decoder.*)"). Names are the libraries' state-dict names: diffusers (UNet, VAE),
// transformers (CLIP text model), the original LDM single-file layout (ldm_keys.ts) and
// the official grounding Segmodule (whose decoder field is spelled `transfromer_decoder`).

interface Kind {
  label: string;
  /** Name prefixes that identify the kind; all of `all` and one of `any` must occur. */
  all: string[];
  any?: string[];
}

/** Checked in order: the more specific layouts first. */
const KINDS: Kind[] = [
  { label: 'an SDXL single-file checkpoint', all: ['conditioner.embedders.', 'model.diffusion_model.'] },
  { label: 'an SD 2.x single-file checkpoint (OpenCLIP text encoder)', all: ['cond_stage_model.model.', 'model.diffusion_model.'] },
  { label: 'an LDM single-file checkpoint', all: ['model.diffusion_model.'] },
  { label: 'an LDM VAE checkpoint', all: ['first_stage_model.'] },
  { label: 'a VAE', all: ['encoder.', 'decoder.'] },
  { label: 'a VAE decoder', all: ['decoder.', 'post_quant_conv.'] },
  { label: 'a UNet', all: ['down_blocks.', 'up_blocks.'] },
  { label: 'a ControlNet', all: ['controlnet_cond_embedding.'] },
  { label: 'a CLIP text encoder', all: ['text_model.'] },
  { label: 'a CLIP vision encoder', all: ['vision_model.'] },
  { label: 'a grounding Segmodule', all: [], any: ['transfromer_decoder.', 'low_feature_conv.', 'highest_feature_mix_conv.'] },
];

function prefixCounts(names: readonly string[], depth: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of names) {
    const p = `${n.split('.').slice(0, depth).join('.')}.`;
    out.set(p, (out.get(p) ?? 0) + 1);
  }
  return out;
}

/** The prefixes (with '*') that occur among `names`, for showing the evidence. */
function evidence(names: readonly string[], prefixes: string[]): string {
  return prefixes.filter((p) => names.some((n) => n.startsWith(p))).map((p) => `${p}*`).join(', ');
}

function match(names: readonly string[]): Kind | null {
  const has = (p: string) => names.some((n) => n.startsWith(p));
  return KINDS.find((k) => k.all.every(has) && (!k.any || k.any.some(has))) ?? null;
}

function isLora(names: readonly string[]): boolean {
  return names.some((n) => /(^|[._])lora(_|\.)|\.lora_(up|down|A|B)\./.test(n));
}

/** A short description of what `names` look like, e.g. "a VAE (encoder.*, decoder.*)",
 *  "a combined checkpoint: unet.* (a UNet), vae.* (a VAE)", or, when nothing matches,
 *  the top-level prefixes with their counts. */
export function describeWeightNames(names: readonly string[]): string {
  const real = names.filter((n) => n !== '__metadata__');
  if (real.length === 0) return 'an empty file (no tensors)';
  if (isLora(real)) return 'a LoRA adapter (lora_* names), not a full model';
  const kind = match(real);
  if (kind) return `${kind.label} (${evidence(real, [...kind.all, ...(kind.any ?? [])])})`;
  // A file of several models under component prefixes (unet.*, vae.*, segmodule.*).
  const groups = [...prefixCounts(real, 1).keys()].sort();
  if (groups.length <= 8) {
    const parts: string[] = [];
    for (const g of groups) {
      const inner = real.filter((n) => n.startsWith(g)).map((n) => n.slice(g.length));
      const k = match(inner);
      if (k) parts.push(`${g}* (${k.label})`);
    }
    if (parts.length > 0) return `a combined checkpoint: ${parts.join(', ')}`;
  }
  const top = [...prefixCounts(real, 1).entries()].sort((a, b) => b[1] - a[1]);
  const shown = top.slice(0, 4).map(([p, c]) => `${p}* (${c})`).join(', ');
  return `an unrecognised layout: names start with ${shown}${top.length > 4 ? `, and ${top.length - 4} more prefixes` : ''}`;
}
