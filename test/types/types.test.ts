/**
 * The published declarations type `req.session` like express-session's: an application declares
 * its SessionData (`declare module 'clowder' { interface SessionData { … } }`) and Express's
 * req.session.user, req.sessionID and req.jvmRoute type-check; wrong types and undeclared
 * properties do not (the fixture's `@ts-expect-error` lines fail the compile if they compile).
 * Compiles test/types/fixtures against dist/ (the package as published, via its self-reference).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const tsc = `${root}node_modules/typescript/bin/tsc`;

test('SessionData, req.session, req.sessionID and req.jvmRoute type-check on an Express request (tsc --noEmit)', async () => {
  assert.ok(existsSync(`${root}dist/index.d.ts`), 'dist/ is built (npm run build)');
  const out = await promisify(execFile)(process.execPath, [tsc, '-p', `${root}test/types/fixtures/tsconfig.json`], {
    cwd: root,
  }).then(
    () => '',
    (err: { stdout?: string; message: string }) => err.stdout || err.message,
  );
  assert.equal(out, '', `tsc reported:\n${out}`);
});
