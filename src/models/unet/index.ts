// Public surface of the SD 1.x UNet.
export { SD15_UNET_CONFIG, resolveUNetConfig, type UNet2DConditionConfig, type ResolvedUNetConfig } from './config.js';
export { UNet2DConditionModel, GROUNDING_TAPS, type TapGroup, type UNetForwardOptions, type UNetOutput } from './unet.js';
export type { CrossAttentionSink } from './context.js';
