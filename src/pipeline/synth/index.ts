// Protocol-II: the synthetic segmentation dataset. plan.ts (what is made), vocab.ts
// (vocabularies, splits, pair lists), engine.ts (generateGrounded as the image source),
// labels.ts (logits -> label maps), run.ts (the resumable, shardable run loop),
// manifest.ts / settings.ts (the folder's records), read.ts (folders and shards back as
// one dataset), export_voc.ts / export_coco.ts (the layouts segmentation trainers read).
export { allPairs, MAX_CLASSES, MAX_REPEATS, pairSample, parseShard, planSynth, shardOf, singleSample, synthPrompt, type Shard, type SynthKind, type SynthPlanSpec, type SynthSample } from './plan.js';
export { readPairList, synthVocabulary, type SynthVocabulary } from './vocab.js';
export { BACKGROUND, IGNORE, ignoreBand, labelCounts, labelMap } from './labels.js';
export { groundedSynthGenerator, type SynthGenerationSettings } from './engine.js';
export { runSynth, synthSettings, type SynthEvent, type SynthGenerator, type SynthImage, type SynthRunOptions, type SynthSummary } from './run.js';
export { MANIFEST_FILE, readManifest, type ManifestRead, type SynthRecord } from './manifest.js';
export { planOf, readSettings, SETTINGS_FILE, shardPlanOf, SYNTH_FORMAT, type SynthSettings } from './settings.js';
export { loadSample, openSynthDataset, type LoadedSample, type SynthDataset, type SynthEntry } from './read.js';
export { EXPORT_FILE, EXPORT_FORMAT, isVal, type ExportKind, type ExportOptions, type ExportSummary } from './export_common.js';
export { exportVoc, type VocExportOptions } from './export_voc.js';
export { COCO_CATEGORY_IDS, cocoCategories, exportCoco, type CocoCategory } from './export_coco.js';
