/**
 * A second build of the clowder package that speaks other protocol versions, for rolling-upgrade
 * tests: the package's dist/ copied to a temporary directory, with src/wire/member.ts compiled
 * again by TypeScript after its version constants were changed. Nothing in the production code
 * reads an override: the variant is a build of its own, as an upgraded release would be.
 */
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ts from 'typescript';

/** The repository root (this file runs from .test-build/test/helpers/). */
export const ROOT = resolve(import.meta.dirname, '..', '..', '..');
/** The current build: the package as `npm run build` made it. */
export const CURRENT_DIST = join(ROOT, 'dist');

export interface VariantBuild {
  /** The variant's package entry (dist/index.js). */
  readonly index: string;
  readonly dir: string;
  remove(): Promise<void>;
}

/** Source of src/wire/member.ts with PROTOCOL_VERSION and MIN_PROTOCOL_VERSION set; throws unless each was found once. */
export function patchVersions(source: string, current: number, min: number): string {
  let out = source;
  for (const [name, value] of [
    ['PROTOCOL_VERSION', current],
    ['MIN_PROTOCOL_VERSION', min],
  ] as const) {
    const re = new RegExp(`^export const ${name} = \\d+;$`, 'gm');
    const hits = out.match(re)?.length ?? 0;
    if (hits !== 1) throw new Error(`src/wire/member.ts: expected one "export const ${name} = N;", found ${hits}`);
    out = out.replace(re, `export const ${name} = ${value};`);
  }
  return out;
}

/** Builds the variant speaking [min, current] into a new temporary directory. */
export async function buildVariant(current: number, min: number): Promise<VariantBuild> {
  const dir = await mkdtemp(join(tmpdir(), `clowder-v${current}-`));
  await cp(CURRENT_DIST, join(dir, 'dist'), { recursive: true });
  // ESM like the package, and its dependencies (pino, zod, yaml) from the repository's node_modules.
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'clowder', type: 'module' }));
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const source = patchVersions(await readFile(join(ROOT, 'src/wire/member.ts'), 'utf8'), current, min);
  const out = ts.transpileModule(source, {
    fileName: 'member.ts',
    reportDiagnostics: true,
    compilerOptions: {
      // ESM, as the package's own build emits it (NodeNext in a "type": "module" package).
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ES2022,
    },
  });
  if (out.diagnostics && out.diagnostics.length > 0)
    throw new Error(ts.formatDiagnostics(out.diagnostics, ts.createCompilerHost({})));
  await writeFile(join(dir, 'dist/wire/member.js'), out.outputText);
  return { index: join(dir, 'dist/index.js'), dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
