/**
 * The cluster key from the command line: CLOWDER_CLUSTER_KEY takes a comma-separated rotation
 * list, --key-file / CLOWDER_KEY_FILE a key file; the start log names the key source, never the
 * key; a short key or a key file others can read stops the node before it binds, without
 * echoing the key. The default key file goes under a temporary XDG_CONFIG_HOME.
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type CliProcess,
  COUNTER_APP,
  cleanEnv,
  destroyAll,
  portIsFree,
  runCli,
  startNode,
} from '../helpers/node-process.js';
import { freePorts } from '../helpers/wait.js';

const K1 = 'q8Vw3nZ0Lr5TgY2mKc7XbH1sJd9FpA4eUo6iNx0lWzQ=';
const K2 = 'R2dT7kPq9Xv4Lm1Nc8Bz5Hs3Jw6Ye0Ua2Gi7Ko9Ft1E=';

let dir = '';
const procs: CliProcess[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clowder-cli-keys-'));
});
after(async () => {
  await destroyAll(procs);
  if (dir) await rm(dir, { recursive: true, force: true });
});

function args(name: string, http: number, cp: number): string[] {
  return [
    '--json',
    '--name',
    name,
    '--port',
    String(http),
    '--cluster-port',
    String(cp),
    '--membership',
    'static',
    '--members',
    `127.0.0.1:${cp}`,
    '--app',
    `/app=${COUNTER_APP}`,
  ];
}

describe('clowder start: cluster keys', () => {
  test('no key configured: the per-user key file is created and named in the start log', async () => {
    const [http, cp] = await freePorts(2);
    const xdg = join(dir, 'xdg');
    const n = startNode(
      'auto',
      args('auto', http!, cp!),
      cleanEnv({ XDG_CONFIG_HOME: xdg, CLOWDER_LOG_LEVEL: 'info' }),
    );
    procs.push(n);
    await n.ready();
    const started = await n.waitLog((l) => l.msg === 'channel started', 'channel started');
    const file = join(xdg, 'clowder', 'cluster.key');
    assert.deepEqual([started.auth, started.keySource, started.keyFile], ['encrypt', 'defaultKeyFile', file]);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const key = (await readFile(file, 'utf8')).trim();
    assert.ok(!n.logs.some((l) => JSON.stringify(l).includes(key)), 'the key is never logged');
    assert.deepEqual(await n.stop(), { code: 0, signal: null });
  });

  test('CLOWDER_CLUSTER_KEY="K1,K2" is a rotation list; --key-file a key file', async () => {
    const [h1, c1, h2, c2] = await freePorts(4);
    const listed = startNode(
      'listed',
      args('listed', h1!, c1!),
      cleanEnv({ CLOWDER_CLUSTER_KEY: `${K1},${K2}`, CLOWDER_LOG_LEVEL: 'info' }),
    );
    procs.push(listed);
    const file = join(dir, 'explicit.key');
    const fromFile = startNode(
      'file',
      [...args('file', h2!, c2!), '--key-file', file],
      cleanEnv({ CLOWDER_LOG_LEVEL: 'info' }),
    );
    procs.push(fromFile);
    await Promise.all([listed.ready(), fromFile.ready()]);
    const a = await listed.waitLog((l) => l.msg === 'channel started', 'channel started');
    assert.deepEqual([a.keySource, a.keys], ['clusterKey', 2]);
    assert.ok(!listed.logs.some((l) => JSON.stringify(l).includes(K1) || JSON.stringify(l).includes(K2)));
    const b = await fromFile.waitLog((l) => l.msg === 'channel started', 'channel started');
    assert.deepEqual([b.keySource, b.keyFile], ['keyFile', file]);
    await Promise.all([listed.stop(), fromFile.stop()]);
  });

  test('a short CLOWDER_CLUSTER_KEY stops the node before it binds, without echoing it', async () => {
    const [http, cp] = await freePorts(2);
    const secret = 'hunter2-is-my-secret';
    const res = await runCli(['start', ...args('short', http!, cp!)], cleanEnv({ CLOWDER_CLUSTER_KEY: secret }));
    assert.equal(res.code, 2, res.stderr);
    assert.match(res.stderr, /invalid config: "cluster.clusterKey" must be at least 32 characters \(got 20/);
    assert.ok(!res.stderr.includes(secret) && !res.stdout.includes(secret), 'key not echoed');
    assert.equal(await portIsFree(http!), true);
    assert.equal(await portIsFree(cp!), true);
  });

  test('a key file readable by others stops the node with the chmod advice', async () => {
    const [http, cp] = await freePorts(2);
    const file = join(dir, 'open.key');
    const made = startNode('mk', [...args('mk', http!, cp!), '--key-file', file]);
    procs.push(made);
    await made.ready();
    await made.stop();
    await chmod(file, 0o644);
    const key = (await readFile(file, 'utf8')).trim();
    const res = await runCli(['start', ...args('bad', http!, cp!)], cleanEnv({ CLOWDER_KEY_FILE: file }));
    assert.equal(res.code, 2, res.stderr);
    assert.match(res.stderr, new RegExp(`accessible by group or others \\(mode 644\\): run \`chmod 600 ${file}\``));
    assert.ok(!res.stderr.includes(key), 'key not echoed');
    assert.equal(await portIsFree(http!), true);
  });
});
