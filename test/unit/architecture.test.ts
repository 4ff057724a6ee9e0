/**
 * Layering: a folder of src/ may import only from folders of lower tiers (docs/architecture.md).
 * The channel layer knows nothing of HTTP or sessions; nothing below the CLI imports the CLI.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const TIERS: Record<string, number> = {
  core: 0,
  config: 1,
  codec: 2,
  wire: 2,
  transport: 3,
  membership: 4,
  channel: 5,
  session: 6,
  http: 8,
  node: 9,
  cli: 10,
  '.': 11, // src/index.ts, the public barrel
};

const here = dirname(fileURLToPath(import.meta.url));
// Compiled to .test-build/test/unit; the sources are at the repository root.
const root = resolve(here, '../../../src');

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await tsFiles(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const layerOf = (file: string) => {
  const rel = relative(root, file).split('/');
  return rel.length === 1 ? '.' : rel[0]!;
};

test('every src/ import points to the same folder or a lower tier', async () => {
  const violations: string[] = [];
  const files = await tsFiles(root);
  assert.ok(files.length > 20, 'found the sources');
  for (const file of files) {
    const from = layerOf(file);
    assert.ok(from in TIERS, `folder src/${from} has no tier: add it to TIERS and docs/architecture.md`);
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
      const target = layerOf(resolve(dirname(file), m[1]!));
      if (target === from) continue;
      if (!(TIERS[target]! < TIERS[from]!))
        violations.push(`${relative(root, file)} imports ${m[1]} (${from} → ${target})`);
    }
  }
  assert.deepEqual(violations, []);
});
