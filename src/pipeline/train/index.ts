// Training of the grounding module, in one import: the loop (loop.ts), its contracts
// (types.ts), option checks (options.ts), the memory estimate (memory.ts), checkpoints
// (checkpoint.ts), the run folder (run_folder.ts) and the Segmodule adapter
// (segmodule_adapter.ts).
export * from './types.js';
export { microBatch, rowWeights, train, uploadSample } from './loop.js';
export { checkTrainOptions, DEFAULT_MEMORY_BUDGET, MAX_DICE, MAX_LR, runSettings, type LoopSettings } from './options.js';
export { checkMemory, estimateStepBytes, sampleInputBytes, type MemoryEstimate } from './memory.js';
export { loadCheckpoint, pruneCheckpoints, readResumePoint, restoreCheckpoint, saveCheckpoint, type ResumePoint } from './checkpoint.js';
export { checkpointName, listCheckpoints } from './files.js';
export { RUN_FORMAT, settingsChanges } from './run_folder.js';
export {
  adamOptimizer, segmoduleActivationBytes, segmoduleTrainable, TINY_GROUNDING_CONFIG, trainGrounding, type ConfigName, type GroundingTrainOptions,
} from './segmodule_adapter.js';
