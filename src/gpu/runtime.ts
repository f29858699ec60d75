// The runtime ties one device to its buffer pool, pipeline cache, command recorder and
// profiler. Ops call `dispatch`; nothing waits on the GPU until `read`.
import { acquireGpu, type DeviceOptions, type GpuContext } from './device.js';
import { debugFlags } from './debug.js';
import { formatBytes, GpuError, LimitError } from './errors.js';
import { packParams, type Param } from './params.js';
import { PipelineCache, type KernelSpec } from './pipelines.js';
import { BufferPool, type PooledBuffer } from './pool.js';
import { bindingSizes, Profiler, type DispatchInfo } from './profiler.js';
import { Recorder, type BufferBinding } from './recorder.js';

export interface DispatchArgs {
  /** Params uniform (binding 0). */
  params?: readonly Param[];
  /** Storage bindings 1..n: inputs first, then outputs. */
  bindings: BufferBinding[];
  /** Workgroup grid; a single number is folded into 2-D when it exceeds the limit. */
  workgroups: number | [number, number?, number?];
  /** Label for errors and profiles (default: the pipeline key). */
  label?: string;
}

export interface MemoryStats {
  liveBytes: number;
  peakBytes: number;
  cachedBytes: number;
  allocations: number;
}

export class Runtime {
  readonly device: GPUDevice;
  readonly limits: GPUSupportedLimits;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  readonly recorder: Recorder;
  private prof: Profiler | null;
  private errors: string[] = [];
  private lost: string | null = null;
  private validate: boolean;
  private scopeErrors: Promise<GPUError | null>[] = [];
  private scopeLabels: string[] = [];
  /** Tests: fill every new tensor with NaN so an unwritten output element fails. */
  poison = false;

  constructor(readonly gpu: GpuContext) {
    this.device = gpu.device;
    this.limits = gpu.device.limits;
    this.pool = new BufferPool(this.device, this.limits.maxBufferSize, gpu.report.description);
    this.pipelines = new PipelineCache(this.device, gpu.hasF16);
    this.prof = gpu.hasTimestamps ? new Profiler(this.device) : null;
    this.recorder = new Recorder(this.device, this.prof);
    this.validate = debugFlags().validate;
    this.device.addEventListener('uncapturederror', (ev) => {
      this.errors.push((ev as GPUUncapturedErrorEvent).error.message);
    });
    void this.device.lost.then((info) => {
      if (info.reason !== 'destroyed') this.lost = `${info.reason}: ${info.message}`;
    });
  }

  static async create(opts: DeviceOptions = {}): Promise<Runtime> {
    return new Runtime(await acquireGpu(opts));
  }

  /** The timestamp-query profiler (null without the feature, until useWallProfiler()). */
  get profiler(): Profiler | null {
    return this.prof;
  }

  /** The profiler, installing the wall-clock one (Profiler with timestamps false) when the
   *  adapter has no timestamp-query. Check `timestamps` on the result. */
  useWallProfiler(): Profiler {
    if (!this.prof) {
      this.prof = new Profiler(this.device, false);
      this.recorder.attach(this.prof);
    }
    return this.prof;
  }

  get adapterName(): string {
    return this.gpu.report.description;
  }

  /** Which kernel variant each op family runs (gpu/variants.ts): the adapter's choice,
   *  assignable (rt.variants.matmul = 'tiled') or forced per call with .with(). */
  get variants() {
    return this.gpu.variants;
  }

  /** Folds a 1-D workgroup count into x*y with x <= maxComputeWorkgroupsPerDimension.
   *  Kernels recover the linear index as wid.x + wid.y * nwg.x and bound-check it. */
  grid(n: number): [number, number, number] {
    const lim = this.limits.maxComputeWorkgroupsPerDimension;
    if (n <= lim) return [Math.max(1, n), 1, 1];
    const y = Math.ceil(n / lim);
    if (y > lim) throw new LimitError(`dispatch of ${n} workgroups exceeds ${lim}^2 on ${this.adapterName}`);
    return [Math.ceil(n / y), y, 1];
  }

  dispatch(spec: KernelSpec, args: DispatchArgs): void {
    this.checkHealth();
    const profiling = this.prof?.enabled === true;
    const t0 = profiling ? performance.now() : 0;
    const { pipeline, key } = this.pipelines.get(spec);
    const pipelineMs = profiling ? performance.now() - t0 : 0;
    const label = args.label ?? key;
    const maxBind = this.limits.maxStorageBufferBindingSize;
    for (const b of args.bindings) {
      const size = b.size ?? b.buffer.size - (b.offset ?? 0);
      if (size > maxBind) {
        throw new LimitError(
          `${label}: binding of ${formatBytes(size)} exceeds maxStorageBufferBindingSize ${formatBytes(maxBind)} on ${this.adapterName}; split the tensor`,
        );
      }
    }
    const wg = args.workgroups;
    const grid: [number, number, number] = typeof wg === 'number' ? this.grid(wg) : [wg[0], wg[1] ?? 1, wg[2] ?? 1];
    const lim = this.limits.maxComputeWorkgroupsPerDimension;
    if (grid.some((g) => g > lim)) throw new LimitError(`${label}: workgroup grid ${grid.join('x')} exceeds ${lim} per dimension`);
    if (grid.some((g) => g === 0)) return;
    const params = args.params ? packParams(args.params) : null;
    if (this.validate) this.device.pushErrorScope('validation');
    let info: DispatchInfo | null = null;
    if (profiling && this.prof?.detail) {
      const { family, entry, dtype, overrides } = spec;
      info = { family, entry, dtype: dtype ?? 'f32', overrides: overrides ?? {}, params: args.params ?? [], ...bindingSizes(args.bindings), pipelineMs };
    }
    this.recorder.dispatch(pipeline, label, params, args.bindings, grid, info);
    if (this.validate) {
      this.scopeErrors.push(this.device.popErrorScope());
      this.scopeLabels.push(label);
    }
  }

  /** Writes host data into a pooled buffer, flushing first if recorded work uses it. */
  upload(pb: PooledBuffer, data: ArrayBufferView, byteOffset = 0): void {
    if (this.recorder.pendingOn(pb)) this.recorder.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const aligned = Math.floor(bytes.byteLength / 4) * 4;
    if (aligned > 0) this.recorder.write(pb.buffer, byteOffset, bytes.subarray(0, aligned));
    if (aligned < bytes.byteLength) {
      const tail = new Uint8Array(4);
      tail.set(bytes.subarray(aligned));
      this.recorder.write(pb.buffer, byteOffset + aligned, tail);
    }
  }

  async read(src: BufferBinding, bytes: number): Promise<ArrayBuffer> {
    this.checkHealth();
    const out = await this.recorder.read(src, bytes);
    await this.checkScopes();
    this.checkHealth();
    return out;
  }

  /** Submits recorded work and waits for the queue to drain. */
  async sync(): Promise<void> {
    this.recorder.flush();
    await this.recorder.replay();
    await this.device.queue.onSubmittedWorkDone();
    await this.checkScopes();
    this.checkHealth();
  }

  memory(): MemoryStats {
    const p = this.pool;
    return { liveBytes: p.liveBytes, peakBytes: p.peakBytes, cachedBytes: p.cachedBytes, allocations: p.allocations };
  }

  private async checkScopes(): Promise<void> {
    if (this.scopeErrors.length === 0) return;
    const errs = await Promise.all(this.scopeErrors);
    const labels = this.scopeLabels;
    this.scopeErrors = [];
    this.scopeLabels = [];
    const i = errs.findIndex((e) => e !== null);
    if (i >= 0) throw new GpuError(`kernel ${labels[i]} failed validation: ${errs[i]?.message}`);
  }

  private checkHealth(): void {
    if (this.lost) throw new GpuError(`the GPU device was lost (${this.lost}); recreate the runtime`);
    if (this.errors.length) {
      const msg = this.errors.join('\n');
      this.errors = [];
      throw new GpuError(`WebGPU error (set GROUNDED_SD_VALIDATE=1 to pin it to a dispatch):\n${msg}`);
    }
  }

  destroy(): void {
    this.recorder.flush();
    this.prof?.destroy();
    this.recorder.destroy();
    this.pool.trim();
    this.gpu.release();
  }
}
