// The peer: tfjs-backend-webgpu in the same process, on the same kind of Dawn adapter as
// the runtime (DESIGN.md section 6). tfjs finds WebGPU through `navigator.gpu`, which
// Node lacks, so we install the `webgpu` package's globals and a navigator whose
// requestAdapter records the adapter tfjs picks (reported next to ours). tfjs is a dev
// dependency, loaded here only, by import() of its package names: an installed package
// without it runs the benchmark with no peer columns (`openPeer` fails with a clear
// message and the runner goes on). Its types are imported as types only (erased).
//
// Timing matches the runtime's: wall time is `reps` runs then a wait for the queue
// (a one-element read of the last output, so the readback does not count), and GPU
// time is tf.time()'s kernelMs, which tfjs takes from timestamp queries around every
// program (each in its own pass, like our profiler).
import type * as tfjs from '@tensorflow/tfjs-core';
import { create, globals } from 'webgpu';
import type { Runtime } from '../gpu/runtime.js';
import type { PeerInstance } from './kernels/types.js';
import type { TimingMode } from './report.js';

export interface Peer {
  tf: typeof tfjs;
  /** tfjs's device has timestamp-query, so tf.time() reports kernel times. */
  timestamps: boolean;
  /** The adapter tfjs requested its device from. */
  adapter: string;
  close(): void;
}

type Navigator = { gpu: GPU };

export async function openPeer(rt: Runtime): Promise<Peer> {
  Object.assign(globalThis, globals);
  const backendFlag = rt.gpu.report.backend ? [`backend=${rt.gpu.report.backend}`] : [];
  let gpu: GPU | null = create(backendFlag);
  let adapter = 'unknown';
  const nav: Navigator = {
    gpu: {
      requestAdapter: async (opts?: GPURequestAdapterOptions) => {
        const a = await gpu?.requestAdapter(opts);
        if (a) adapter = a.info.description || `${a.info.vendor} ${a.info.architecture}`;
        return a ?? null;
      },
    } as GPU,
  };
  Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
  const release = () => {
    gpu = null; // Dawn's instance keeps Node alive while referenced
    Reflect.deleteProperty(globalThis, 'navigator');
  };
  let tf: typeof tfjs;
  try {
    tf = await import('@tensorflow/tfjs-core');
    // After the navigator above: the backend registers itself only where navigator.gpu exists.
    await import('@tensorflow/tfjs-backend-webgpu');
  } catch (e) {
    release();
    throw new Error(
      `tfjs peer unavailable (${(e as Error).message}); it is a dev dependency: install @tensorflow/tfjs-core and @tensorflow/tfjs-backend-webgpu, or pass --no-peer`,
    );
  }
  if (!(await tf.setBackend('webgpu'))) {
    release();
    throw new Error('tfjs could not initialise its webgpu backend; pass --no-peer');
  }
  await tf.ready();
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  return {
    tf,
    timestamps: device.features.has('timestamp-query'),
    adapter,
    close() {
      tf.engine().reset(); // disposes the backend's buffers and query set
      device.destroy();
      release();
    },
  };
}

function disposeAll(out: tfjs.Tensor | tfjs.Tensor[]): void {
  for (const t of Array.isArray(out) ? out : [out]) t.dispose();
}

/** Waits until everything tfjs queued has run, reading back one element only. */
async function drain(tf: typeof tfjs, out: tfjs.Tensor | tfjs.Tensor[]): Promise<void> {
  const last = Array.isArray(out) ? out[out.length - 1] : out;
  const one = tf.tidy(() => tf.slice(tf.reshape(last, [-1]), 0, 1));
  await one.data();
  one.dispose();
}

/** One per-run ms value per trial, like `timeRuns` for the runtime. */
export async function timePeer(
  peer: Peer, inst: PeerInstance, reps: number, trials: number, mode: TimingMode,
): Promise<number[]> {
  const { tf } = peer;
  const out: number[] = [];
  for (let t = 0; t < trials; t++) {
    if (mode === 'timestamp') {
      let total = 0;
      for (let r = 0; r < reps; r++) {
        let res: tfjs.Tensor | tfjs.Tensor[] = [];
        const info = await tf.time(() => {
          res = inst.run();
        });
        disposeAll(res);
        if (typeof info.kernelMs !== 'number') throw new Error(`tf.time gave no kernel time: ${JSON.stringify(info.kernelMs)}`);
        total += info.kernelMs;
      }
      out.push(total / reps);
    } else {
      const t0 = performance.now();
      for (let r = 0; r < reps - 1; r++) disposeAll(inst.run());
      const last = inst.run();
      await drain(tf, last);
      out.push((performance.now() - t0) / reps);
      disposeAll(last);
    }
  }
  return out;
}

/** Runs the peer twice (compiles its pipelines) and returns the second run's wall ms. */
export async function warmPeer(peer: Peer, inst: PeerInstance): Promise<number> {
  let ms = 0;
  for (let i = 0; i < 2; i++) {
    const t0 = performance.now();
    const res = inst.run();
    await drain(peer.tf, res);
    ms = performance.now() - t0;
    disposeAll(res);
  }
  return ms;
}
