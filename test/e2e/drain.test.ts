/**
 * Draining on a graceful stop (`clowder start`, SIGTERM), on loopback. Sixteen clients keep
 * incrementing their session's counter, half on keep-alive connections, half on a fresh
 * connection per request, while a health checker asks `/_clowder/ready` every 20 ms, as a
 * balancer does; once it sees the node not ready (503, or no answer), the clients send nothing
 * new to it (a balancer sends elsewhere), and the node gets SIGTERM meanwhile.
 *
 * Proven with the default drain: not one request fails (every count is the previous + 1), the
 * checker saw 503 while the node still served, responses during the drain carry
 * `Connection: close`, and the node exits 0. The control with `--drain-ms 0` (the behaviour
 * before draining) fails requests sent between the SIGTERM and the checker's next look: the
 * node stops accepting at once. A second SIGTERM ends a long drain at once.
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { after, describe, test } from 'node:test';
import { type CliProcess, COUNTER_APP, cleanEnv, destroyAll, startNode } from '../helpers/node-process.js';
import { freePorts, waitFor } from '../helpers/wait.js';

const procs: CliProcess[] = [];
after(() => destroyAll(procs));

async function startOne(label: string, drain: string[]): Promise<CliProcess & { port: number }> {
  const [http, cp] = await freePorts(2);
  const args = ['--name', label, '--port', String(http), '--cluster-port', String(cp), '--membership', 'static'];
  args.push('--members', `127.0.0.1:${cp}`, '--insecure', '--json', '--app', `/app=${COUNTER_APP}`, ...drain);
  const p = startNode(label, args, cleanEnv({ CLOWDER_LOG_LEVEL: 'info' }));
  procs.push(p);
  await p.ready();
  return Object.assign(p, { port: http! });
}

interface Answer {
  status: number;
  body: string;
  close: boolean;
  cookie?: string;
}

function get(port: number, path: string, agent: Agent | false, cookie?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, agent, headers: cookie ? { cookie } : {}, timeout: 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body,
            close: res.headers.connection === 'close',
            cookie: res.headers['set-cookie']?.[0]?.split(';')[0],
          }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end();
  });
}

/** Clients and a checker against one node, until the checker sees it not ready. */
class Load {
  readonly errors: string[] = [];
  readonly broken: string[] = [];
  readonly readiness: string[] = [];
  ok = 0;
  closeAnswers = 0;
  /** The checker saw the node not ready: nothing new is sent to it. */
  down = false;
  sigtermAt = 0;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 8 });
  readonly #loops: Promise<void>[] = [];

  constructor(readonly port: number) {
    for (let c = 0; c < 16; c++) this.#loops.push(this.#client(c < 8 ? this.#agent : false));
    this.#loops.push(this.#checker());
  }

  async #client(agent: Agent | false): Promise<void> {
    let cookie: string | undefined;
    let count = 0;
    while (!this.down) {
      try {
        const r = await get(this.port, '/app/counter', agent, cookie);
        if (r.status !== 200) throw new Error(`status ${r.status}`);
        cookie ??= r.cookie;
        const n = Number(/count=(\d+)/.exec(r.body)?.[1]);
        if (n !== count + 1) this.broken.push(`count ${n} after ${count}`);
        count = n;
        this.ok++;
        if (r.close) this.closeAnswers++;
      } catch (err) {
        const since = this.sigtermAt === 0 ? 'before SIGTERM' : `${Date.now() - this.sigtermAt} ms after SIGTERM`;
        this.errors.push(`${(err as Error).message} (${since})`);
        return;
      }
    }
  }

  async #checker(): Promise<void> {
    while (!this.down) {
      try {
        const r = await get(this.port, '/_clowder/ready', false);
        this.readiness.push(`${r.status} ${r.body.trim()}`);
        if (r.status !== 200) this.down = true;
      } catch (err) {
        this.readiness.push(`error ${(err as Error).message}`);
        this.down = true;
      }
      // The checker's interval (a balancer's `inter`), not a wait for a state.
      if (!this.down) await new Promise((r) => setTimeout(r, 20));
    }
  }

  async end(): Promise<void> {
    await Promise.all(this.#loops);
    this.#agent.destroy();
  }
}

/** Runs the load against a node, SIGTERMs it after some writes; returns the load once the node exited. */
async function underLoad(node: CliProcess & { port: number }): Promise<{ load: Load; code: number | null }> {
  const load = new Load(node.port);
  await waitFor(() => load.ok >= 300 || load.errors.length > 0, 'the load to run', { timeoutMs: 30_000 });
  load.sigtermAt = Date.now();
  node.kill('SIGTERM');
  await load.end();
  const exit = await node.exited(30_000);
  return { load, code: exit.code };
}

describe('graceful stop drains (clowder start, SIGTERM)', () => {
  test('default drain: readiness 503 at once, every request answered, Connection: close, exit 0', async (t) => {
    const node = await startOne('drain', []);
    const { load, code } = await underLoad(node);
    t.diagnostic(
      `${load.ok} writes, ${load.closeAnswers} with Connection: close; readiness: ${load.readiness.slice(-3).join(', ')}`,
    );
    assert.deepEqual(load.errors, [], 'no request failed');
    assert.deepEqual(load.broken, [], 'every count is the previous + 1');
    assert.equal(load.readiness.at(-1), '503 draining', 'the checker saw readiness 503 while the node served');
    assert.ok(load.closeAnswers > 0, 'answers during the drain carry Connection: close');
    assert.equal(code, 0);
    assert.ok(node.logs.some((l) => l.msg === 'draining: readiness 503, still serving' && l.drainMs === 2000));
  });

  test('control, --drain-ms 0 (no drain): requests sent after the SIGTERM fail', async (t) => {
    const node = await startOne('nodrain', ['--drain-ms', '0']);
    const { load, code } = await underLoad(node);
    t.diagnostic(`${load.ok} writes; ${load.errors.length} failed, e.g. ${load.errors[0]}`);
    assert.ok(load.errors.length > 0, 'without a drain, requests racing the stop fail');
    assert.ok(!load.readiness.includes('503 draining'));
    assert.equal(code, 0);
  });

  test('a second SIGTERM ends a long drain at once', async () => {
    const node = await startOne('twice', ['--drain-ms', '600000']);
    node.kill('SIGTERM');
    await waitFor(
      async () => (await get(node.port, '/_clowder/ready', false)).status === 503,
      'readiness 503 (draining)',
      { timeoutMs: 10_000 },
    );
    const served = await get(node.port, '/app/counter', false);
    assert.equal(served.status, 200, 'still serving while draining');
    assert.equal(served.close, true);
    node.kill('SIGTERM');
    const exit = await node.exited(15_000);
    assert.equal(exit.code, 0);
    assert.ok(node.logs.some((l) => l.msg === 'drain ended: no longer accepting'));
  });
});
