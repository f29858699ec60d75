// Enforces the layer order of DESIGN.md section 3 and what the package can ship:
//   cli -> bench -> pipeline -> models -> nn, ref, io -> tensor -> gpu
// Every import-like statement of every src/**/*.ts is checked, from the TypeScript syntax
// tree (so strings and comments never match): `import x from`, `import type`, `import '...'`,
// `export ... from`, `import x = require()`, `import('...')` types and dynamic import().
//  - layers: imports only go down; layers of equal rank do not import each other; ref
//    (the float64 references) is plain TS and may import only tensor types;
//  - a relative import must stay inside src/ (the package ships dist/ compiled from src/);
//  - dynamic import() takes a string literal naming a package or a node: builtin, never a
//    relative or computed specifier (a bundler and tsc must see every module);
//  - a static import of a package (not `import type`) must be in package.json's
//    "dependencies", so an installed package runs without dev dependencies; optional
//    dev-only peers (tfjs for the benchmark) are loaded by import('<package>').
// Usage: tsx scripts/check-layers.ts [ROOT]   (ROOT holds src/ and package.json; default:
// this checkout). Prints each problem as file:line and exits 1 when there is any.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

export const RANK: Readonly<Record<string, number>> = {
  gpu: 0, tensor: 1, io: 2, nn: 2, ref: 2, models: 3, pipeline: 4, bench: 5, cli: 6,
};
/** Layers that may import only these layers (value imports, then type-only imports). */
const ONLY: Readonly<Record<string, { value: readonly string[]; type: readonly string[] }>> = {
  ref: { value: [], type: ['tensor'] },
};

export interface Problem { file: string; line: number; message: string }

interface ImportSite {
  spec: string | null; // null: not a string literal
  line: number;
  kind: 'static' | 'dynamic';
  typeOnly: boolean;
  text: string;
}

function* sourceFiles(dir: string): Generator<string> {
  for (const f of readdirSync(dir).sort()) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) yield* sourceFiles(p);
    else if (/\.m?ts$/.test(f) && !f.endsWith('.d.ts')) yield p;
  }
}

/** Every import-like site of one file, with its 1-based line. */
function importSites(file: string, text: string): ImportSite[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: ImportSite[] = [];
  const literal = (e: ts.Node | undefined): string | null =>
    e && (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) ? e.text : null;
  const add = (node: ts.Node, spec: string | null, kind: ImportSite['kind'], typeOnly: boolean) => {
    const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
    out.push({ spec, line, kind, typeOnly, text: node.getText(sf).split('\n')[0].slice(0, 80) });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const c = node.importClause;
      // `import type {a}` or `import {type a, type b}`: erased from the JavaScript.
      const allTypes = !!c && !c.name && !!c.namedBindings && ts.isNamedImports(c.namedBindings)
        && c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly);
      add(node, literal(node.moduleSpecifier), 'static', !!c?.isTypeOnly || allTypes);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      const allTypes = !!node.exportClause && ts.isNamedExports(node.exportClause)
        && node.exportClause.elements.length > 0 && node.exportClause.elements.every((e) => e.isTypeOnly);
      add(node, literal(node.moduleSpecifier), 'static', node.isTypeOnly || allTypes);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node, literal(node.moduleReference.expression), 'static', node.isTypeOnly);
    } else if (ts.isImportTypeNode(node)) {
      const arg = node.argument;
      add(node, ts.isLiteralTypeNode(arg) ? literal(arg.literal) : null, 'static', true);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node, literal(node.arguments[0]), 'dynamic', false);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The package a bare specifier names ('@scope/name/sub' -> '@scope/name'). */
const packageOf = (spec: string) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
const isBuiltin = (spec: string) => spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]);

/** All problems of the tree at `root` (its src/ and package.json). */
export function checkLayers(root: string): Problem[] {
  const src = join(root, 'src');
  if (!existsSync(src)) throw new Error(`check-layers: ${src} does not exist; pass the folder that holds src/`);
  const pkgFile = join(root, 'package.json');
  const pkg = existsSync(pkgFile) ? (JSON.parse(readFileSync(pkgFile, 'utf8')) as { dependencies?: Record<string, string> }) : {};
  const deps = new Set(Object.keys(pkg.dependencies ?? {}));
  const problems: Problem[] = [];
  for (const file of sourceFiles(src)) {
    const rel = relative(root, file).split(sep).join('/');
    const parts = relative(src, file).split(sep);
    const from = parts.length > 1 ? parts[0] : null; // null: src/index.ts and other top-level files
    if (from !== null && !(from in RANK)) {
      problems.push({ file: rel, line: 1, message: `src/${from}/ is not a layer; add it to RANK in scripts/check-layers.ts` });
      continue;
    }
    for (const s of importSites(file, readFileSync(file, 'utf8'))) {
      const bad = (message: string) => problems.push({ file: rel, line: s.line, message: `${s.text}: ${message}` });
      if (s.spec === null) {
        bad(s.kind === 'dynamic'
          ? 'dynamic import() with a computed specifier; import the module statically'
          : 'import specifier is not a string literal');
        continue;
      }
      const relativeSpec = s.spec.startsWith('.') || s.spec.startsWith('/');
      if (s.kind === 'dynamic' && relativeSpec) {
        bad(`dynamic import() of a relative path; import '${s.spec}' statically (only import('<package>') is allowed, for optional dev dependencies)`);
        continue;
      }
      if (!relativeSpec) {
        if (s.kind === 'static' && !s.typeOnly && !isBuiltin(s.spec) && !deps.has(packageOf(s.spec))) {
          bad(`'${packageOf(s.spec)}' is not in package.json "dependencies"; add it there, import types only, or load an optional package with import('${s.spec}')`);
        }
        continue;
      }
      const target = resolve(dirname(file), s.spec);
      const inSrc = relative(src, target);
      if (inSrc.startsWith('..') || resolve(src, inSrc) !== target) {
        bad(`'${s.spec}' resolves outside src/ (the package ships only what src/ compiles to); move the code into src/`);
        continue;
      }
      const tparts = inSrc.split(sep);
      const to = tparts.length > 1 ? tparts[0] : null;
      if (from === null || to === from) continue;
      if (to === null) {
        bad(`'${s.spec}' imports a top-level src file from inside the ${from} layer`);
        continue;
      }
      if (!(to in RANK)) continue; // reported once for the unknown layer's own files
      const only = ONLY[from];
      const ok = only
        ? only.value.includes(to) || (s.typeOnly && only.type.includes(to))
        : RANK[to] < RANK[from];
      if (!ok) bad(`${from} may not import ${to}${only ? ` (${from} may import ${[...only.value, ...only.type.map((t) => `types from ${t}`)].join(', ') || 'nothing'})` : ''}`);
    }
  }
  return problems;
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  const problems = checkLayers(root);
  if (problems.length) {
    console.error(`layer check failed (${problems.length}):\n${problems.map((p) => `  ${p.file}:${p.line}: ${p.message}`).join('\n')}`);
    process.exit(1);
  }
  console.log('layer check: imports go down only, stay in src/, and load no module dynamically');
}
