// The command recorder: dispatches go into one open command encoder and compute pass;
// nothing is submitted until a value is read, the uniform ring fills, or the dispatch
// budget per submit is reached. Uniform parameters of all dispatches in one submit
// share one uniform buffer, written with a single queue.writeBuffer before the submit
// (queue order makes that safe across submits).
// Wall-clock profiling (no timestamp-query) holds submits back instead, each with its
// uniforms and with the uploads made between them, and replays them in order one at a
// time, waiting for each: see replay().
import { GpuError } from './errors.js';
import type { PooledBuffer } from './pool.js';
import type { DispatchInfo, Profiler } from './profiler.js';

export interface BufferBinding {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
  /** Pooled buffers get their epoch stamped, so uploads know when to flush first. */
  pooled?: PooledBuffer;
}

const UNIFORM_CAPACITY = 1 << 18; // 256 KiB
const UNIFORM_ALIGN = 256;
const MAX_DISPATCHES_PER_SUBMIT = 2048;

/** A held submit (with its uniform bytes and profiler segment) or a held upload. */
type Held =
  | { kind: 'submit'; commands: GPUCommandBuffer; uniforms: Uint8Array; segment: number }
  | { kind: 'write'; buffer: GPUBuffer; offset: number; data: Uint8Array };

export class Recorder {
  /** Incremented by every submit; recorded work belongs to the current epoch. */
  epoch = 0;
  submits = 0;
  dispatchesTotal = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private uniformCpu = new Uint8Array(UNIFORM_CAPACITY);
  private uniformUsed = 0;
  private uniformBuf: GPUBuffer;
  private dispatches = 0;
  private held: Held[] = [];

  constructor(private device: GPUDevice, private profiler: Profiler | null) {
    this.uniformBuf = device.createBuffer({
      label: 'uniform-ring',
      size: UNIFORM_CAPACITY,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  /** Installs a profiler after construction (Runtime.useWallProfiler). */
  attach(profiler: Profiler): void {
    this.flush();
    this.profiler = profiler;
  }

  /** Wall-clock profiling is on: submits are held for replay(). */
  private get holding(): boolean {
    return this.profiler !== null && !this.profiler.timestamps && (this.profiler.enabled || this.held.length > 0);
  }

  private enc(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder({ label: `epoch-${this.epoch}` });
    return this.encoder;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  dispatch(
    pipeline: GPUComputePipeline,
    label: string,
    params: ArrayBuffer | null,
    buffers: BufferBinding[],
    grid: [number, number, number],
    info: DispatchInfo | null = null,
  ): void {
    const paramBytes = params ? Math.ceil(params.byteLength / 16) * 16 : 0;
    const profiling = this.profiler?.enabled === true;
    if (
      this.uniformUsed + paramBytes > UNIFORM_CAPACITY ||
      this.dispatches >= MAX_DISPATCHES_PER_SUBMIT ||
      (profiling && this.profiler?.needsFlush)
    ) {
      this.flush();
    }
    const entries: GPUBindGroupEntry[] = [];
    if (params) {
      const off = this.uniformUsed;
      this.uniformCpu.set(new Uint8Array(params), off);
      this.uniformCpu.fill(0, off + params.byteLength, off + paramBytes);
      entries.push({ binding: 0, resource: { buffer: this.uniformBuf, offset: off, size: paramBytes } });
      this.uniformUsed += Math.ceil(paramBytes / UNIFORM_ALIGN) * UNIFORM_ALIGN;
    }
    buffers.forEach((b, i) => {
      if (b.pooled) b.pooled.epoch = this.epoch;
      entries.push({ binding: i + 1, resource: { buffer: b.buffer, offset: b.offset ?? 0, size: b.size } });
    });
    const bindGroup = this.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
    const timestampWrites = profiling && this.profiler ? this.profiler.next(label, info) : null;
    if (timestampWrites) {
      this.endPass();
      const pass = this.enc().beginComputePass({ label, timestampWrites });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
      pass.end();
    } else {
      this.pass ??= this.enc().beginComputePass({ label: `pass-${this.epoch}` });
      this.pass.setPipeline(pipeline);
      this.pass.setBindGroup(0, bindGroup);
      this.pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    }
    this.dispatches++;
    this.dispatchesTotal++;
  }

  copy(src: BufferBinding, dst: BufferBinding, bytes: number): void {
    this.endPass();
    if (src.pooled) src.pooled.epoch = this.epoch;
    if (dst.pooled) dst.pooled.epoch = this.epoch;
    this.enc().copyBufferToBuffer(src.buffer, src.offset ?? 0, dst.buffer, dst.offset ?? 0, bytes);
  }

  /** True when recorded-but-unsubmitted work touches this buffer. */
  pendingOn(pb: PooledBuffer): boolean {
    return this.encoder !== null && pb.epoch === this.epoch;
  }

  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    if (this.holding) {
      const segment = this.profiler?.closeSegment() ?? -1;
      this.held.push({ kind: 'submit', commands: this.encoder.finish(), uniforms: this.uniformCpu.slice(0, this.uniformUsed), segment });
    } else {
      const after = this.profiler?.resolve(this.encoder) ?? null;
      if (this.uniformUsed > 0) {
        this.device.queue.writeBuffer(this.uniformBuf, 0, this.uniformCpu, 0, this.uniformUsed);
      }
      this.device.queue.submit([this.encoder.finish()]);
      after?.();
    }
    this.encoder = null;
    this.uniformUsed = 0;
    this.dispatches = 0;
    this.epoch++;
    this.submits++;
  }

  /** queue.writeBuffer, or held in order with the submits while they are held. */
  write(buffer: GPUBuffer, offset: number, data: Uint8Array): void {
    if (this.holding) this.held.push({ kind: 'write', buffer, offset, data: data.slice() });
    else this.device.queue.writeBuffer(buffer, offset, data);
  }

  /** Submits held work in order, one submit at a time, and gives the profiler each
   *  submit's wall time (writing its uniforms, submit, until the queue is done). */
  async replay(): Promise<void> {
    const held = this.held;
    this.held = [];
    for (const h of held) {
      if (h.kind === 'write') {
        this.device.queue.writeBuffer(h.buffer, h.offset, h.data);
        continue;
      }
      const t0 = performance.now();
      if (h.uniforms.byteLength > 0) this.device.queue.writeBuffer(this.uniformBuf, 0, h.uniforms);
      this.device.queue.submit([h.commands]);
      await this.device.queue.onSubmittedWorkDone();
      this.profiler?.segmentDone(h.segment, performance.now() - t0);
    }
  }

  /** Copies `bytes` from a buffer into host memory, flushing recorded work first. */
  async read(src: BufferBinding, bytes: number): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({
      label: 'readback',
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.copy(src, { buffer: staging }, size);
    this.flush();
    await this.replay();
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      throw new GpuError(`reading back a buffer failed: ${(e as Error).message}`);
    }
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    return out;
  }

  destroy(): void {
    this.uniformBuf.destroy();
  }
}
