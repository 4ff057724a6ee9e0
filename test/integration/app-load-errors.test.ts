/**
 * An application module that throws while it is imported is the application's error, not a
 * config error: the node reports the module path (apps.N.module) and keeps the original error,
 * stack included, as the cause (the CLI prints it). Only a module that does not exist is a
 * config error.
 */
import * as assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/core/logger.js';
import { ClusterError, ConfigError, ErrorCode } from '../../src/index.js';
import { createClusterNode } from '../../src/node/cluster-node.js';
import { cleanEnv, runCli } from '../helpers/node-process.js';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clowder-app-load-'));
  await writeFile(
    join(dir, 'throws.mjs'),
    'export const distributable = true;\nfunction connect() {\n  throw new Error("DATABASE_URL is not set");\n}\nconnect();\nexport default (req, res) => res.end();\n',
  );
  await writeFile(
    join(dir, 'missing-dep.mjs'),
    'import "clowder-no-such-package";\nexport default (q, s) => s.end();\n',
  );
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function startError(module: string): Promise<unknown> {
  const node = createClusterNode(
    {
      apps: [{ path: '/', module }],
      http: { port: 0 },
      cluster: { insecure: true, receiver: { port: 0 }, membership: { type: 'static', members: ['127.0.0.1:1'] } },
    },
    { logger: silentLogger },
  );
  try {
    await node.start();
  } catch (err) {
    return err;
  } finally {
    await node.stop();
  }
  assert.fail('start() should have failed');
}

describe('application modules that fail to load', () => {
  it('a module that throws at import: ERR_CLOWDER_APP_LOAD naming the module, the original error as cause', async () => {
    const module = join(dir, 'throws.mjs');
    const err = await startError(module);
    assert.ok(err instanceof ClusterError && !(err instanceof ConfigError), `not a config error: ${String(err)}`);
    assert.equal(err.code, ErrorCode.APP_LOAD);
    assert.ok(err.message.includes(module) && err.message.includes('apps.0.module'), err.message);
    assert.match(err.message, /DATABASE_URL is not set/);
    const cause = err.cause as Error;
    assert.equal(cause.message, 'DATABASE_URL is not set');
    assert.match(cause.stack ?? '', /throws\.mjs:3:/, 'the original stack points into the module');
  });

  it('a module importing a missing package is the app error too (not "module not found")', async () => {
    const err = (await startError(join(dir, 'missing-dep.mjs'))) as ClusterError;
    assert.equal(err.code, ErrorCode.APP_LOAD);
    assert.match(err.message, /clowder-no-such-package/);
  });

  it('a module that does not exist is a config error naming apps.0.module', async () => {
    const err = await startError(join(dir, 'nope.mjs'));
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.key, 'apps.0.module');
  });

  it('clowder start prints the module path and the original stack', async () => {
    const run = await runCli(
      ['start', '--port', '0', '--cluster-port', '0', '--app', `/=${join(dir, 'throws.mjs')}`],
      cleanEnv(),
    );
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /application module .*throws\.mjs \(apps\.0\.module\) threw while loading/);
    assert.match(run.stderr, /caused by: Error: DATABASE_URL is not set\n\s+at connect \(file:.*throws\.mjs:3:/);
  });
});
