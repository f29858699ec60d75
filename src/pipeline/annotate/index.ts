// Annotators: where the Protocol-I evaluation's ground truth comes from (types.ts), the
// user-supplied `masks` annotator (masks.ts: PNG folder or COCO JSON), and the COCO
// decoding it rests on (coco.ts, rle.ts, polygon.ts).
export { checkAnnotation, type AnnotateImage, type AnnotateSample, type Annotator, type PlannedAnnotation } from './types.js';
export { classFileNames, masksAnnotator, readMaskPng } from './masks.js';
export { annotationMask, CocoGroundTruth, COCO_TO_VOC_NAMES, mapCategories, normaliseName, sampleIdOfFile } from './coco.js';
export { countsFromString, decodeRle, rleCounts, rleToMask, type CocoRle } from './rle.js';
export { checkPolygon, rasterisePolygon, rasterisePolygons } from './polygon.js';
