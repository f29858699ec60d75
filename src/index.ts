// Public library API: the runtime and tensors, the ops, the models, weight loading and
// the pipelines. Everything here is plain TypeScript running through Dawn in Node.
export { Runtime, type DispatchArgs, type MemoryStats } from './gpu/runtime.js';
export { acquireGpu, type DeviceOptions, type AdapterReport } from './gpu/device.js';
export { EngineError, ShapeError, WeightError, LimitError, GpuError, InputError } from './gpu/errors.js';
export { Tensor, type DType } from './tensor/tensor.js';
export { scope, scopeAsync, keep } from './tensor/scope.js';

export * from './nn/elementwise.js';
export * from './nn/matmul.js';
export * from './nn/conv2d.js';
export * from './nn/attention.js';
export * from './nn/group_norm.js';
export * from './nn/layer_norm.js';
export * from './nn/batch_norm.js';
export * from './nn/softmax.js';
export * from './nn/reduce.js';
export * from './nn/loss.js';
export * from './nn/resize.js';
export * from './nn/bicubic.js';
export * from './nn/layout.js';
export * from './nn/unfold.js';
export * from './nn/embedding.js';
export * from './nn/timestep.js';
export * from './nn/combine.js';
export * from './nn/pad.js';
export { Module, Param, namedParams, loadWeights, type WeightSource } from './nn/module.js';

export { SafetensorsFile, writeSafetensors } from './io/safetensors.js';
export { CLIPTokenizer } from './io/tokenizer.js';
export { openSdWeights, type SdWeights } from './io/sd_weights.js';
export { ldmToDiffusers, diffusersToLdm } from './io/ldm_keys.js';

export { CLIPTextModel, SD15_TEXT_CONFIG, type CLIPTextConfig } from './models/clip.js';
export { AutoencoderKL } from './models/vae/vae.js';
export { SD15_VAE_CONFIG } from './models/vae/config.js';
export { createScheduler, type Scheduler } from './models/schedulers/index.js';
export { runParity, type ParityReport } from './pipeline/parity/index.js';
export { UNet2DConditionModel, SD15_UNET_CONFIG, GROUNDING_TAPS } from './models/unet/index.js';
export { Segmodule } from './models/grounding/segmodule.js';
export { SD1_GROUNDING_CONFIG, type GroundingConfig } from './models/grounding/config.js';
export { groundingForward, type GroundingSample } from './models/grounding/forward.js';
export { groundingBackward } from './models/grounding/backward.js';
export { Adam, AdamW } from './nn/optim.js';
export { StableDiffusion, SD15_CONFIGS, TINY_CONFIGS, type SdLoadOptions } from './models/sd.js';
export { checkModelDtype, MODEL_DTYPES, type ModelDtype } from './models/precision.js';
export { cast } from './nn/cast.js';
export { generate, type GenerateOptions, type GenerateResult } from './pipeline/generate.js';
export { train, trainGrounding } from './pipeline/train/index.js';
export { groundBatch, evaluateMIoU } from './pipeline/ground.js';
export { initialLatents } from './pipeline/latents.js';
export {
  generateGrounded, classEmbeddings, classesFromPrompt, snapshotGroundingState, restoreGroundingState,
  type GroundedOptions, type GroundedResult, type GroundedImage, type GroundedSettings, type GroundedTimings, type GroundedProgress,
  type GroundedStage, type BatchNormMode, type GroundingState,
} from './pipeline/grounded.js';
export { DaamAccumulator, daamLayers, daamWordMaps, DAAM_THRESHOLD, type DaamLayer, type DaamWordMap } from './pipeline/daam.js';
export type { CrossAttentionSink } from './models/unet/index.js';
export { writePng, overlayMasks } from './io/png.js';
export {
  roiAlign, multiScaleRoiAlign, mapLevels, inferScale, LEVEL_MAPPER_DEFAULTS,
  type RoiAlignOptions, type MultiScaleRoiAlignOptions, type MultiScaleRoiAlignResult, type LevelMapperOptions,
} from './nn/roi_align.js';
export { maxPool2d, type MaxPool2dOptions } from './nn/max_pool.js';
export { nms, batchedNms } from './nn/nms.js';
export { decodeBoxes, clipBoxesToImage, removeSmallBoxes, boxArea, resizeBoxes, gatherRows, BBOX_XFORM_CLIP, type BoxCoderWeights } from './nn/boxes.js';
export { pasteMasksInImage, pasteBoxes, type PasteMasksResult } from './nn/mask_paste.js';
export { cellAnchors, gridAnchors, type AnchorGrid } from './nn/anchors.js';
export { rcnnTransform, rcnnResizeSize, rcnnBatchSize, type RcnnTransformOptions, type RcnnTransformResult } from './nn/rcnn_transform.js';
export { UsageError } from './gpu/errors.js';
export { loadCheckpoint, readTorchFile, TorchPickleError, TORCH_CHECKPOINT_EXTENSIONS, type CheckpointSource } from './io/torch_pickle.js';
export { writeSafetensorsStreamed } from './io/safetensors.js';
export {
  loadGroundingModule, randomGroundingModule, groundingConfigFor, BUILTIN_TINY_CONFIGS, type LoadedGroundingModule,
} from './pipeline/grounding_module.js';
export { generateWithDaam, promptWords, type DaamGenerateOptions, type DaamGenerateResult, type DaamImage } from './pipeline/daam_generate.js';
export { IoUAccumulator, maskCounts, meanIoU, harmonicMean, type MethodResult, type ClassResult } from './pipeline/eval/miou.js';
export { VOC_CLASSES, COCO_CLASSES, vocSplit, cocoSplit65_15, type ClassSplit } from './pipeline/eval/vocab.js';
export { buildTestSets, TEST_SETS, type TestSample, type TestSetName } from './pipeline/eval/testsets.js';
export { runEval, type EvalRunOptions, type EvalSummary } from './pipeline/eval/run.js';
export { masksAnnotator, decodeRle, rasterisePolygons, type Annotator } from './pipeline/annotate/index.js';
export { buildDataset, mergeDatasets, DatasetSource, trainOnDataset, type BuildOptions, type BuildSummary } from './pipeline/dataset/index.js';
export { runSynth, planSynth, labelMap, type SynthRunOptions } from './pipeline/synth/index.js';
