// Grounded generation (the paper's chain), in one import: generateGrounded and its types
// (grounded/generate.ts, grounded/types.ts), class embeddings (grounded/text.ts), the
// feature grouping (grounded/features.ts), prompt templates and word search
// (grounded/prompt.ts) and the sampling loop with taps and attention sinks
// (grounded/denoise.ts). DAAM lives in daam.ts.
export { generateGrounded, restoreGroundingState, snapshotGroundingState, type GroundingState } from './grounded/generate.js';
export type {
  BatchNormMode, GroundedImage, GroundedOptions, GroundedProgress, GroundedResult, GroundedSettings, GroundedStage, GroundedTimings,
} from './grounded/types.js';
export { classEmbeddings, classEmbeddingsFromStates, classTokenCount } from './grounded/text.js';
export { checkModuleFits, expectedModuleShape, featureLayout, groupFeatures, levelSizes, type FeatureTap } from './grounded/features.js';
export { CLASS_QUERY_PREFIX, classesFromPrompt, locateClasses, promptWindow, tokenStrings, wordMergeIndices, type PromptWindow } from './grounded/prompt.js';
export { denoise, type DenoiseOptions, type StepTensors } from './grounded/denoise.js';
