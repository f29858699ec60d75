// Training-data construction, in one import: vocabularies and splits (vocab.ts), the
// sample plan and shards (plan.ts), settings (settings.ts), the manifest (manifest.ts),
// sample files (files.ts), one sample's generation and the regenerating UNet call
// (generate.ts), annotators (annotators.ts), the build (build.ts), merging shards
// (merge.ts), the training source (source.ts), training on a dataset (train.ts), and real
// pictures of a VOC folder as samples (voc_source.ts, voc_image.ts, invert.ts, maker.ts).
export { datasetVocabulary, type DatasetVocabulary } from './vocab.js';
export { datasetPrompt, MAX_INDEX, parseShard, planSample, sampleId, shardIndices, type PlannedSample, type Shard } from './plan.js';
export {
  DATASET_FILE, DATASET_FORMAT, datasetShape, readDatasetSettings, resolveGeneration, STORAGES, type DatasetSettings, type DatasetShape, type GenerationRequest, type Storage,
} from './settings.js';
export { MANIFEST_FILE, readManifest, type ManifestRecord, type OkRecord, type SkippedRecord } from './manifest.js';
export { fileDatasetIo, IMAGE_FILE, REGEN_FORMAT, SAMPLE_FILE, SAMPLES_DIR, type DatasetIo, type SampleFiles } from './files.js';
export { featureCall, generateSample, type GeneratedSample, type SampleGeneration } from './generate.js';
export { ANNOTATORS, checkBinaryMaskPng, datasetAnnotator, type AnnotatorName } from './annotators.js';
export { buildDataset, type BuildEvent, type BuildOptions, type BuildSummary } from './build.js';
export { mergeDatasets, type MergeSummary } from './merge.js';
export { DatasetSource, FINGERPRINT_TOLERANCE, type DatasetEntry, type DatasetSourceOptions } from './source.js';
export { datasetGroundingConfig, SD1_GROUNDING_WIDTHS, trainOnDataset, validate, writeTrainingCurve, type DatasetTrainOptions, type DatasetTrainResult, type WidthsName } from './train.js';
export { encodeLatent, invertLatent, inversionTimesteps, type InversionOptions } from './invert.js';
export { sampleMakerOf, type MadeSample, type SampleMaker } from './maker.js';
export { VOC_IMAGE_DIR, VOC_LIST_DIR, VOC_MASK_DIR, VOC_VOID, VocInversionAnnotator, vocInversionAnnotator, type VocEntry } from './voc_source.js';
