// What `npm pack` ships must run under plain node and bundle with esbuild (STYLE.md 5.20).
// Packs this checkout (the `prepare` build runs), installs the tarball into an empty project
// (from the npm cache when it holds the packages, the registry otherwise), and runs the
// README's "## Library" example there with plain node, then bundled into one file by
// esbuild and run from a folder that holds only `webgpu` (so the bundle cannot fall back
// on a shaders/ folder or anything else from the package). Slow: a full tsc build and
// an npm install; the matmul itself is tiny.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '../..');
const require = createRequire(import.meta.url);
const TIMEOUT = 600_000;

// Child npm runs must not inherit the npm_* lifecycle variables of an enclosing `npm test`
// (package name, lifecycle event, local prefix); keep only where the cache and registry are.
const KEEP_NPM = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']);
const env: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_') || KEEP_NPM.has(k.toLowerCase())),
);
env.XDG_RUNTIME_DIR ??= tmpdir();

/** Runs a command, returning stdout; on failure the error carries the command's output. */
function sh(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${err.status}:\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  }
}

/** The first ```ts block under README.md's "## Library" heading. */
function readmeLibraryExample(): string {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const section = readme.split(/^## Library$/m)[1]?.split(/^## /m)[0];
  const code = section?.match(/^```ts\n([\s\S]*?)^```$/m)?.[1];
  if (!code) throw new Error('README.md has no ```ts block under "## Library"');
  return code;
}

// The example multiplies ones [64, 32] by twos [32, 16] with relu: every output entry is
// a sum of K = 32 products 1 * 2 = 64 (positive, so relu keeps it), 64 * 16 = 1024 of them.
const M = 64, K = 32, N = 16;
const expectedLine = `${M * N} ${K * 1 * 2} ${K * 1 * 2}`;

// The esbuild banner the README gives (checked below), so the bundle has a `require`.
const BUNDLE_BANNER = "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);";

describe('npm package', () => {
  let tmp: string;
  let tarball: string;
  let project: string;

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'grounded-sd-pack-'));
    const packDir = join(tmp, 'pack');
    mkdirSync(packDir);
    sh('npm', ['pack', '--pack-destination', packDir, '--no-audit', '--no-fund'], repo);
    const tgz = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
    expect(tgz, 'npm pack writes one tarball').toHaveLength(1);
    tarball = join(packDir, tgz[0]);

    project = join(tmp, 'app');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }, null, 2));
    sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], project);
    writeFileSync(join(project, 'example.mjs'), readmeLibraryExample());
  }, TIMEOUT);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('ships compiled JavaScript, types, shaders and the bin, and no sources or tests', () => {
    const files = sh('tar', ['-tzf', tarball], tmp).split('\n').filter(Boolean);
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/gpu/shader_sources.js', 'bin/grounded-sd.mjs', 'shaders/matmul.wgsl', 'README.md']) {
      expect(files, `tarball has ${f}`).toContain(`package/${f}`);
    }
    const stray = files.filter((f) => /^package\/(src|test|scripts)\//.test(f) || (/\.ts$/.test(f) && !f.endsWith('.d.ts')));
    expect(stray, 'no TypeScript sources, tests or scripts in the tarball').toEqual([]);

    const pkg = JSON.parse(readFileSync(join(project, 'node_modules/grounded-sd/package.json'), 'utf8'));
    expect(pkg.exports['.']).toEqual({ types: './dist/index.d.ts', import: './dist/index.js' });
    expect(pkg.dependencies?.tsx, 'tsx is a devDependency only').toBeUndefined();
    const inlined = readFileSync(join(project, 'node_modules/grounded-sd/dist/gpu/shader_sources.js'), 'utf8');
    expect(inlined).toContain(JSON.stringify(readFileSync(join(repo, 'shaders/lib/activation.wgsl'), 'utf8')));
  }, TIMEOUT);

  it('gives every kernel family the same WGSL, includes resolved, inlined as read from shaders/', async () => {
    type Cache = { source(family: string): string };
    type CacheModule = { PipelineCache: new (device: GPUDevice, hasF16: boolean) => Cache };
    const shipped = (await import(pathToFileURL(join(project, 'node_modules/grounded-sd/dist/gpu/pipelines.js')).href)) as CacheModule;
    const checkout = (await import('../../src/gpu/pipelines.js')) as CacheModule;
    // source() assembles text only; it never touches the device.
    const inlined = new shipped.PipelineCache({} as GPUDevice, false);
    const disk = new checkout.PipelineCache({} as GPUDevice, false);
    const families = readdirSync(join(repo, 'shaders')).filter((f) => f.endsWith('.wgsl')).map((f) => f.slice(0, -5));
    expect(families).toContain('matmul');
    for (const family of families) {
      const text = inlined.source(family);
      expect(text, family).toBe(disk.source(family));
      expect(text, `${family}: includes resolved`).not.toMatch(/^\/\/ #include /m);
    }
  }, TIMEOUT);

  it('runs the README example with plain node', () => {
    const out = sh(process.execPath, ['example.mjs'], project);
    expect(out.trim().split('\n').at(-1)).toBe(expectedLine);
  }, TIMEOUT);

  it('runs the installed CLI from dist/ (no src/, no tsx)', () => {
    const pkgDir = join(project, 'node_modules/grounded-sd');
    expect(existsSync(join(pkgDir, 'src'))).toBe(false);
    const report = JSON.parse(sh(process.execPath, [join(project, 'node_modules/.bin/grounded-sd'), 'info'], project));
    expect(typeof report.limits?.maxStorageBufferBindingSize).toBe('number');
  }, TIMEOUT);

  it('runs the README example bundled by esbuild into one file', async () => {
    const bundleDir = join(tmp, 'bundled');
    mkdirSync(join(bundleDir, 'node_modules'), { recursive: true });
    // esbuild comes with tsx (a devDependency); the same options as the README's command line.
    // The banner gives the bundle a `require`: pngjs is CommonJS and requires node builtins
    // (zlib, util), which esbuild's ESM output cannot turn into imports.
    expect(readFileSync(join(repo, 'README.md'), 'utf8'), 'README gives the banner').toContain(BUNDLE_BANNER);
    const esbuild = await import('esbuild');
    await esbuild.build({
      entryPoints: [join(project, 'example.mjs')],
      absWorkingDir: project,
      bundle: true,
      platform: 'node',
      format: 'esm',
      external: ['webgpu'],
      banner: { js: BUNDLE_BANNER },
      outfile: join(bundleDir, 'app.mjs'),
      logLevel: 'warning',
    });
    // Only webgpu beside the bundle: the grounded-sd package (and its shaders/) is not there.
    symlinkSync(join(project, 'node_modules/webgpu'), join(bundleDir, 'node_modules/webgpu'), 'dir');
    expect(existsSync(join(bundleDir, 'node_modules/grounded-sd'))).toBe(false);
    const out = sh(process.execPath, ['app.mjs'], bundleDir);
    expect(out.trim().split('\n').at(-1)).toBe(expectedLine);
  }, TIMEOUT);

  it('types the public API from the shipped .d.ts', () => {
    writeFileSync(
      join(project, 'consumer.mts'),
      [
        "import { Runtime, Tensor, matmul } from 'grounded-sd';",
        'const rt: Runtime = await Runtime.create();',
        'const device: GPUDevice = rt.device; // WebGPU globals come with the package (@webgpu/types)',
        'const a: Tensor = Tensor.from(rt, new Float32Array(4), [2, 2]);',
        "const y: Promise<Float32Array> = matmul(a, a, { activation: 'relu' }).toArray();",
        '// @ts-expect-error: a shape is a number array (this line fails if the types are any)',
        "Tensor.from(rt, new Float32Array(4), 'not a shape');",
        'void [y, device];',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true,
          skipLibCheck: false, typeRoots: [join(repo, 'node_modules/@types')], types: ['node'],
        },
        files: ['consumer.mts'],
      }),
    );
    sh(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], project);
  }, TIMEOUT);
});
