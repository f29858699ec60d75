// Scheduler factory: builds a scheduler from a diffusers config object (like
// `Class.from_config`), by short name or by diffusers class name.
import { InputError } from '../../gpu/errors.js';
import { DDIMInverseScheduler, DDIMScheduler } from './ddim.js';
import { DPMSolverMultistepScheduler } from './dpm_solver.js';
import { EulerDiscreteScheduler } from './euler.js';
import { PNDMScheduler } from './pndm.js';
import type { Scheduler } from './common.js';

export type { Scheduler, BetaConfig } from './common.js';
export { DDIMInverseScheduler, DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, PNDMScheduler };

export type SchedulerName = 'ddim' | 'pndm' | 'euler' | 'dpm++2m';

const BUILDERS: Record<SchedulerName, new (config: Record<string, unknown>) => Scheduler> = {
  ddim: DDIMScheduler,
  pndm: PNDMScheduler,
  euler: EulerDiscreteScheduler,
  'dpm++2m': DPMSolverMultistepScheduler,
};

/** Short name of a diffusers scheduler class ('DDIMScheduler' or 'diffusers.DDIMScheduler'). */
export function schedulerNameForClass(className: string): SchedulerName {
  const base = className.split('.').pop() ?? className;
  const names: Record<string, SchedulerName> = {
    DDIMScheduler: 'ddim',
    PNDMScheduler: 'pndm',
    EulerDiscreteScheduler: 'euler',
    DPMSolverMultistepScheduler: 'dpm++2m',
  };
  const name = names[base];
  if (!name) throw new InputError(`scheduler class '${className}' is not supported (supported: ${Object.keys(names).join(', ')})`);
  return name;
}

/** Builds a scheduler from a diffusers config (resolved or partial: class defaults fill
 *  the missing keys, keys the class does not know are ignored). */
export function createScheduler(name: SchedulerName, config: Record<string, unknown>): Scheduler {
  const Builder = BUILDERS[name];
  if (!Builder) throw new InputError(`unknown scheduler '${name}' (use one of ${Object.keys(BUILDERS).join(', ')})`);
  return new Builder(config);
}
