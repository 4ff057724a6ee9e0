/**
 * `clowder start` as a user runs it: configuration mistakes name the key and stop the node
 * before it binds anything; CLOWDER_* environment variables replace flags; SIGTERM is a graceful
 * stop (the request in flight completes, the peer sees a leave and keeps the sessions); a YAML and
 * a JSON config file both start a node.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type IncomingMessage, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type CliProcess,
  COUNTER_APP,
  cleanEnv,
  destroyAll,
  fields,
  get,
  portIsFree,
  REPO,
  runCli,
  startNode,
} from '../helpers/node-process.js';
import { freePorts } from '../helpers/wait.js';

/** Answers 300 ms after it was asked (headers at once), counting its calls in the session. */
const SLOW_APP = `
export const distributable = true;
export default function slow(req, res) {
  if ((req.url ?? '/').startsWith('/read')) {
    const s = req.getSession(false);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('slow=' + (s?.slow ?? 0) + ' node=' + req.jvmRoute + '\\n');
    return;
  }
  const s = req.session;
  s.slow = (s.slow ?? 0) + 1;
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.write('working\\n');
  setTimeout(() => res.end('done slow=' + s.slow + ' node=' + req.jvmRoute + '\\n'), 300);
}
`;

let dir = '';
const procs: CliProcess[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clowder-cli-start-'));
});
after(async () => {
  await destroyAll(procs);
  if (dir) await rm(dir, { recursive: true, force: true });
});

function track(p: CliProcess): CliProcess {
  procs.push(p);
  return p;
}

/** The key a ConfigError message names: `invalid config: "<key>" must be …`. */
function namedKey(stderr: string): string | undefined {
  return /invalid config: "([^"]+)"/.exec(stderr)?.[1];
}

describe('clowder start: config errors name the key before anything starts', () => {
  const app = `/app=${COUNTER_APP}`;

  async function expectConfigError(args: string[], key: string, ports: number[], env = cleanEnv()): Promise<void> {
    const res = await runCli(['start', ...args], env);
    assert.deepEqual({ code: res.code, signal: res.signal }, { code: 2, signal: null }, res.stderr);
    assert.equal(namedKey(res.stderr), key, `stderr names ${key}: ${res.stderr}`);
    assert.match(res.stderr, /^clowder: invalid config: /m);
    assert.doesNotMatch(res.stdout, /ready/);
    assert.doesNotMatch(res.stderr, /channel started|node ready/);
    for (const p of ports) assert.equal(await portIsFree(p), true, `port ${p} was never bound`);
  }

  test('--port abc', async () => {
    const [cp] = await freePorts(1);
    await expectConfigError(['--port', 'abc', '--cluster-port', String(cp), '--app', app], '--port', [cp!]);
  });

  test('--host 0.0.0.0 without a cluster key', async () => {
    const [http, cp] = await freePorts(2);
    await expectConfigError(
      ['--host', '0.0.0.0', '--port', String(http), '--cluster-port', String(cp), '--app', app],
      'cluster.clusterKey',
      [http!, cp!],
    );
  });

  test('a misspelt key in a YAML config file', async () => {
    const [http, cp] = await freePorts(2);
    const file = join(dir, 'typo.yaml');
    await writeFile(file, 'sessions:\n  maxInactiveIntervl: 5\n');
    await expectConfigError(
      ['--config', file, '--port', String(http), '--cluster-port', String(cp), '--app', app],
      'sessions.maxInactiveIntervl',
      [http!, cp!],
    );
  });

  test('a config file with problems in sessions, cluster and http: every one on stderr, one line each', async () => {
    const [http, cp] = await freePorts(2);
    const file = join(dir, 'problems.yaml');
    await writeFile(
      file,
      [
        'http:',
        '  drainMs: -5',
        'sessions:',
        '  backups: -1',
        '  manage: backup',
        'cluster:',
        `  receiver: { port: ${cp} }`,
        '  detector: { mode: lifeguards, probeTimeoutMs: 200 }',
        '  sender: { timeoutMs: -1 }',
        '',
      ].join('\n'),
    );
    const res = await runCli(
      ['start', '--config', file, '--port', String(http), '--app', app],
      cleanEnv({ CLOWDER_INSECURE: '1' }),
    );
    assert.deepEqual({ code: res.code, signal: res.signal }, { code: 2, signal: null }, res.stderr);
    const lines = res.stderr.trim().split('\n');
    assert.deepEqual(lines.sort(), [
      'clowder: invalid config: "cluster.detector.mode" must be "lifeguard", "swim" or "off" (got "lifeguards")',
      'clowder: invalid config: "cluster.detector.probeTimeoutMs" must be below cluster.detector.probeIntervalMs (100): indirect probes need the rest of the interval (got 200)',
      'clowder: invalid config: "cluster.sender.timeoutMs" must be a duration in milliseconds from 1 to 600000 (got -1)',
      'clowder: invalid config: "http.drainMs" must be milliseconds from 0 to 600000 (0 = no drain) (got -5)',
      'clowder: invalid config: "sessions.backups" must be an integer from 0 to 64 (copies of each session besides the primary) (got -1)',
      'clowder: invalid config: "sessions.manage" is not an option; did you mean sessions.manager?',
    ]);
    assert.equal(namedKey(res.stderr), 'sessions.manage', 'unknown keys first');
    assert.doesNotMatch(res.stdout, /ready/);
    for (const p of [http!, cp!]) assert.equal(await portIsFree(p), true, `port ${p} was never bound`);
  });

  test('several bad flags: every one on stderr, one line each, before anything starts', async () => {
    const [cp] = await freePorts(1);
    const res = await runCli(
      [
        'start',
        '--port',
        'abc',
        '--cluster-port',
        String(cp),
        '--manager',
        'backups',
        '--backups',
        'two',
        '--send',
        'fast',
        '--forward',
        'sideways',
        '--app',
        app,
      ],
      cleanEnv({ CLOWDER_INSECURE: '1' }),
    );
    assert.deepEqual({ code: res.code, signal: res.signal }, { code: 2, signal: null }, res.stderr);
    const keys = res.stderr
      .trim()
      .split('\n')
      .map((l) => /^clowder: invalid config: "([^"]+)"/.exec(l)?.[1]);
    assert.deepEqual(keys.sort(), ['--backups', '--forward', '--manager', '--port', '--send'], res.stderr);
    for (const line of [
      'clowder: invalid config: "--manager" must be "delta" or "backup" (got "backups")',
      'clowder: invalid config: "--send" must be "async" or "sync" (got "fast")',
      'clowder: invalid config: "--forward" must be "auto", "always" or "off" (got "sideways")',
    ])
      assert.ok(res.stderr.includes(line), `${line}\nin ${res.stderr}`);
    assert.equal(await portIsFree(cp!), true, 'nothing bound');
  });

  test('CLOWDER_INSECURE=maybe', async () => {
    const [http, cp] = await freePorts(2);
    await expectConfigError(
      ['--port', String(http), '--cluster-port', String(cp), '--app', app],
      'CLOWDER_INSECURE',
      [http!, cp!],
      cleanEnv({ CLOWDER_INSECURE: 'maybe' }),
    );
  });

  test('no --app', async () => {
    const [http, cp] = await freePorts(2);
    await expectConfigError(['--port', String(http), '--cluster-port', String(cp)], '--app', [http!, cp!]);
  });
});

describe('clowder start: environment, graceful stop, config files', () => {
  let slowApp = '';
  before(async () => {
    slowApp = join(dir, 'slow-app.mjs');
    await writeFile(slowApp, SLOW_APP);
  });

  test('CLOWDER_* environment variables instead of flags (a module path relative to the working directory)', async () => {
    const [http, cp] = await freePorts(2);
    const n = track(
      startNode(
        'env',
        [],
        cleanEnv({
          CLOWDER_JSON: '1',
          CLOWDER_INSECURE: 'true',
          CLOWDER_NAME: 'envnode',
          CLOWDER_PORT: String(http),
          CLOWDER_CLUSTER_PORT: String(cp),
          // No leading ./: a file under the working directory is that file, as with `node path`.
          CLOWDER_APPS: `/app=${relative(REPO, COUNTER_APP)}`,
          CLOWDER_MEMBERSHIP: 'static',
          CLOWDER_MEMBERS: `127.0.0.1:${cp}`,
          CLOWDER_LOG_LEVEL: 'info',
        }),
      ),
    );
    assert.deepEqual(await n.ready(), {
      event: 'ready',
      node: 'envnode',
      http: `http://127.0.0.1:${http}`,
      cluster: `127.0.0.1:${cp}`,
    });
    const started = await n.waitLog((l) => l.msg === 'channel started', 'channel started');
    assert.equal(started.membership, 'static');
    assert.equal(started.keySource, 'none', 'CLOWDER_INSECURE');
    const r = await get(`${n.url}/app/counter`);
    assert.equal(fields(r.body).node, 'envnode');
    assert.match(r.session ?? '', /^[0-9A-F]{32}\.envnode$/);
    assert.deepEqual(await n.stop(), { code: 0, signal: null });
  });

  test('SIGTERM: the request in flight completes, exit 0, the peer sees a leave at once and keeps the sessions', async (t) => {
    const [httpA, httpB, cpA, cpB] = await freePorts(4);
    const members = `127.0.0.1:${cpA},127.0.0.1:${cpB}`;
    const args = (name: string, http: number, cp: number) => [
      '--name',
      name,
      '--port',
      String(http),
      '--cluster-port',
      String(cp),
      '--membership',
      'static',
      '--members',
      members,
      '--app',
      `/app=${COUNTER_APP}`,
      '--app',
      `/slow=${slowApp}`,
      '--json',
    ];
    const env = cleanEnv({ CLOWDER_LOG_LEVEL: 'info' });
    const a = track(startNode('A', args('A', httpA!, cpA!), env));
    await a.ready();
    const b = track(startNode('B', args('B', httpB!, cpB!), env));
    await b.ready();
    await a.waitLog((l) => l.msg === 'member added' && l.member === 'B', 'A sees B');

    // Sessions on A (asynchronous replication to B).
    const cookies: string[] = [];
    for (let i = 0; i < 2; i++) {
      const first = await get(`${a.url}/app/counter`);
      cookies.push(first.session!);
      await get(`${a.url}/app/counter`, first.session);
    }

    // A slow request is in flight (its headers arrived) when A gets SIGTERM.
    const slow = await new Promise<{ res: IncomingMessage; body: Promise<string> }>((resolve, reject) => {
      const req = request(`${a.url}/slow/`, { agent: false }, (res) => {
        const body = new Promise<string>((done, fail) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => done(text));
          res.on('error', fail);
        });
        resolve({ res, body });
      });
      req.on('error', reject);
      req.end();
    });
    const termAt = Date.now();
    a.kill('SIGTERM');
    const body = await slow.body;
    const bodyAt = Date.now();
    assert.equal(slow.res.statusCode, 200);
    assert.equal(body, 'working\ndone slow=1 node=A\n', 'the request in flight completed');
    const slowCookie = /JSESSIONID=([^;]+)/.exec(String(slow.res.headers['set-cookie']))![1]!;
    assert.deepEqual(await a.exited(), { code: 0, signal: null }, a.tail());
    assert.ok(bodyAt <= a.exitedAt + 50, 'A answered before it exited');
    assert.equal(await portIsFree(httpA!), true, "A's HTTP port is released");
    assert.equal(await portIsFree(cpA!), true, "A's cluster port is released");

    // The peer: a leave (not a failure detection after dropTime), seen before A was gone. Both
    // are facts of order, not a time window (which would measure the machine's load).
    const left = await b.waitLog((l) => l.msg === 'member removed' && l.member === 'A', 'B: A removed after SIGTERM');
    assert.equal(left.reason, 'leave');
    const leaveMs = (left.time as number) - termAt;
    assert.ok((left.time as number) <= a.exitedAt + 50, 'B saw the leave before A was gone');
    t.diagnostic(
      `in-flight request answered ${bodyAt - termAt} ms after SIGTERM; A exited after ${a.exitedAt - termAt} ms; B saw the leave after ${leaveMs} ms`,
    );

    // Its sessions stay on the peer, including the change made by the request in flight.
    for (const c of cookies) assert.equal((await get(`${b.url}/app/read`, c)).body, 'count=2 node=B\n');
    assert.equal((await get(`${b.url}/slow/read`, slowCookie)).body, 'slow=1 node=B\n');
    assert.deepEqual(await b.stop(), { code: 0, signal: null });
  });

  test('a YAML config file and the same in JSON both start a node (a relative module path means relative to the file)', async () => {
    const [httpY, httpJ, cpY, cpJ] = await freePorts(4);
    const members = [`127.0.0.1:${cpY}`, `127.0.0.1:${cpJ}`];
    const config = (name: string, http: number, cp: number) => ({
      name,
      http: { port: http },
      apps: [{ path: '/app', module: COUNTER_APP }],
      cluster: { receiver: { port: cp }, membership: { type: 'static', members } },
      sessions: { maxInactiveInterval: 600, sendOptions: 'sync' },
    });
    const yamlFile = join(dir, 'node-y.yaml');
    await copyFile(COUNTER_APP, join(dir, 'counter-copy.mjs'));
    const jsonFile = join(dir, 'node-j.json');
    await writeFile(
      yamlFile,
      [
        '# node Y',
        'name: Y',
        'http:',
        `  port: ${httpY}`,
        'apps:',
        '  - path: /app',
        '    module: ./counter-copy.mjs',
        'cluster:',
        '  receiver:',
        `    port: ${cpY}`,
        '  membership:',
        '    type: static',
        `    members: [${members.join(', ')}]`,
        'sessions:',
        '  maxInactiveInterval: 600',
        '  sendOptions: sync',
        '',
      ].join('\n'),
    );
    await writeFile(jsonFile, JSON.stringify(config('J', httpJ!, cpJ!), null, 2));

    const y = track(startNode('Y', ['--config', yamlFile, '--json']));
    assert.deepEqual(await y.ready(), {
      event: 'ready',
      node: 'Y',
      http: `http://127.0.0.1:${httpY}`,
      cluster: `127.0.0.1:${cpY}`,
    });
    const j = track(startNode('J', ['--config', jsonFile, '--json']));
    assert.deepEqual(await j.ready(), {
      event: 'ready',
      node: 'J',
      http: `http://127.0.0.1:${httpJ}`,
      cluster: `127.0.0.1:${cpJ}`,
    });
    // The two form one cluster: a session written on J (synchronously) is read on Y.
    const r = await get(`${j.url}/app/counter`);
    assert.equal(fields(r.body).node, 'J');
    assert.equal((await get(`${y.url}/app/read`, r.session)).body, 'count=1 node=Y\n');
    const [ey, ej] = await Promise.all([y.stop(), j.stop()]);
    assert.deepEqual(ey, { code: 0, signal: null });
    assert.deepEqual(ej, { code: 0, signal: null });
  });
});
