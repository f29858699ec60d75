// Every kernel benchmark family, by the stem its files share (STYLE.md 5.2). Imported
// statically so the compiled package carries them (no file discovery at run time); a new
// src/bench/kernels/<family>.ts is added here.
import type { BenchCase } from './types.js';
import { cases as attention } from './attention.js';
import { cases as bicubic } from './bicubic.js';
import { cases as conv2d } from './conv2d.js';
import { cases as elementwise } from './elementwise.js';
import { cases as group_norm } from './group_norm.js';
import { cases as matmul } from './matmul.js';
import { cases as nms } from './nms.js';
import { cases as softmax } from './softmax.js';

export const KERNEL_FAMILIES: Readonly<Record<string, readonly BenchCase[]>> = {
  attention, bicubic, conv2d, elementwise, group_norm, matmul, nms, softmax,
};
