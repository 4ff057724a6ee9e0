/**
 * `clowder balancer`'s proxy against plain HTTP servers standing in for nodes: the route of the
 * session cookie picks the node, new clients go round-robin; a refused connection marks a node
 * down at once and the request (with its body, unsent yet) goes to another node; a GET whose
 * connection broke before an answer is sent again, a POST that reached a node is not (502);
 * bodies stream both ways; keep-alive to the nodes; X-Forwarded-For/-Proto added, hop-by-hop
 * headers dropped; health checks take a node out and bring it back; limits and config errors.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { after, describe, test } from 'node:test';
import { balancerConfigFrom, parseBackend } from '../../src/cli/balancer.js';
import { routeOf } from '../../src/cli/balancer-pool.js';
import { Balancer } from '../../src/cli/balancer-proxy.js';
import { resolveBalancerConfig } from '../../src/config/balancer-config.js';
import { ConfigError } from '../../src/core/errors.js';
import { freePorts, waitFor } from '../helpers/wait.js';

/** A stand-in node: answers `<name> <method> <body length>`, its readiness settable, its handler replaceable. */
class FakeNode {
  ready = 200;
  connections = 0;
  seen: IncomingMessage[] = [];
  handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  readonly server: Server;
  constructor(readonly name: string) {
    this.server = createServer((req, res) => {
      if (req.url === '/_clowder/ready') {
        res.writeHead(this.ready).end();
        return;
      }
      this.seen.push(req);
      if (this.handler) return this.handler(req, res);
      let n = 0;
      req.on('data', (d: Buffer) => {
        n += d.length;
      });
      req.on('end', () => res.end(`${name} ${req.method} ${n}`));
    });
    this.server.on('connection', () => this.connections++);
  }
  async listen(port = 0): Promise<number> {
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    return (this.server.address() as AddressInfo).port;
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

interface Reply {
  status: number;
  body: string;
  headers: IncomingMessage['headers'];
}

function send(
  port: number,
  opts: {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: Buffer | string;
    agent?: false;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }),
        );
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const nodes: FakeNode[] = [];
const balancers: Balancer[] = [];
after(async () => {
  await Promise.all(balancers.map((b) => b.stop()));
  await Promise.all(nodes.map((n) => n.close()));
});

/** Three fake nodes a, b, c and a balancer in front; `dead` names nodes whose port has nothing listening. */
async function setup(dead: string[] = [], extra: Record<string, unknown> = {}) {
  const names = ['a', 'b', 'c'];
  const fakes = new Map<string, FakeNode>();
  const ports: number[] = [];
  const spare = await freePorts(names.length);
  for (const [i, name] of names.entries()) {
    if (dead.includes(name)) {
      ports.push(spare[i]!);
      continue;
    }
    const f = new FakeNode(name);
    nodes.push(f);
    fakes.set(name, f);
    ports.push(await f.listen());
  }
  const balancer = new Balancer({
    port: 0,
    backends: names.map((route, i) => ({ route, host: '127.0.0.1', port: ports[i]! })),
    healthIntervalMs: 600_000, // tests run the checks themselves
    ...extra,
  });
  balancers.push(balancer);
  const { port } = await balancer.start();
  return { balancer, port, fakes, ports };
}

const who = (r: Reply) => r.body.split(' ')[0];

describe('clowder balancer: routing', () => {
  test('routeOf reads the route after the last "." of the named cookie only', () => {
    assert.equal(routeOf(undefined, 'JSESSIONID'), '');
    assert.equal(routeOf('JSESSIONID=abc.node-a', 'JSESSIONID'), 'node-a');
    assert.equal(routeOf('x=1; JSESSIONID=abc.def.node-b; y=2', 'JSESSIONID'), 'node-b');
    assert.equal(routeOf('XJSESSIONID=abc.evil; JSESSIONID=abc.good', 'JSESSIONID'), 'good');
    assert.equal(routeOf('JSESSIONID=abc', 'JSESSIONID'), '');
    assert.equal(routeOf('JSESSIONIDX=abc.b', 'JSESSIONID'), '');
    assert.equal(routeOf('sid=1.c', 'sid'), 'c');
  });

  test('new clients round-robin, a cookie sticks to its node, an unknown route is a new client', async () => {
    const { port } = await setup();
    const fresh = [];
    for (let i = 0; i < 6; i++) fresh.push(who(await send(port)));
    assert.deepEqual(fresh, ['a', 'b', 'c', 'a', 'b', 'c']);
    for (let i = 0; i < 4; i++)
      assert.equal(who(await send(port, { headers: { cookie: 'JSESSIONID=0123.b' } })), 'b', 'sticks to b');
    const unknown = new Set<string | undefined>();
    for (let i = 0; i < 3; i++) unknown.add(who(await send(port, { headers: { cookie: 'JSESSIONID=0123.zz' } })));
    assert.equal(unknown.size, 3, 'an unknown route is balanced');
  });
});

describe('clowder balancer: failover', () => {
  test('a refused connection marks the node down at once and the GET goes to another node', async () => {
    const { port, balancer, fakes } = await setup();
    await balancer.pool.checkAll();
    await fakes.get('a')!.close(); // crashed after its last health check
    const r = await send(port, { headers: { cookie: 'JSESSIONID=0123.a' } });
    assert.equal(r.status, 200);
    assert.notEqual(who(r), 'a');
    const s = balancer.stats();
    assert.equal(s.redispatched, 1);
    assert.equal(s.failed, 0);
    assert.equal(s.backends[0]!.up, false, 'a is down');
    // Down: its clients go elsewhere without trying it first.
    await send(port, { headers: { cookie: 'JSESSIONID=0123.a' } });
    assert.equal(balancer.stats().redispatched, 1);
  });

  test('a POST whose node refuses the connection is sent to another node with its whole body', async () => {
    const { port, balancer, fakes } = await setup();
    await balancer.pool.checkAll();
    await fakes.get('a')!.close();
    const body = Buffer.alloc(200_000, 7);
    const r = await send(port, { method: 'POST', headers: { cookie: 'JSESSIONID=0123.a' }, body });
    assert.equal(r.status, 200);
    assert.match(r.body, /^[bc] POST 200000$/);
  });

  test('a GET whose connection breaks before an answer is sent again; a POST that reached a node is not', async () => {
    const { port, fakes, balancer } = await setup();
    fakes.get('a')!.handler = (req) => req.socket.destroy();
    const g = await send(port, { headers: { cookie: 'JSESSIONID=0123.a' } });
    assert.equal(g.status, 200);
    assert.notEqual(who(g), 'a');
    // a is down now; bring it back (health check) and make it fail a POST after reading it.
    await balancer.pool.checkAll();
    assert.equal(balancer.stats().backends[0]!.up, true);
    fakes.get('a')!.handler = (req) => req.on('data', () => req.socket.destroy());
    const seenB = fakes.get('b')!.seen.length + fakes.get('c')!.seen.length;
    const p = await send(port, { method: 'POST', headers: { cookie: 'JSESSIONID=0123.a' }, body: 'x'.repeat(10) });
    assert.equal(p.status, 502);
    assert.equal(fakes.get('b')!.seen.length + fakes.get('c')!.seen.length, seenB, 'not sent to another node');
    assert.equal(balancer.stats().failed, 1);
  });

  test('every node down: 503, counted', async () => {
    const { port, balancer } = await setup(['a', 'b', 'c']);
    const r = await send(port);
    assert.equal(r.status, 503);
    assert.equal(balancer.stats().failed, 1);
  });

  test('health checks take a node that is not ready out and bring it back', async () => {
    const { port, fakes, balancer } = await setup();
    fakes.get('b')!.ready = 503;
    await balancer.pool.checkAll();
    assert.equal(balancer.stats().backends[1]!.up, false);
    const served = new Set<string | undefined>();
    for (let i = 0; i < 6; i++) served.add(who(await send(port)));
    assert.deepEqual([...served].sort(), ['a', 'c']);
    assert.notEqual(who(await send(port, { headers: { cookie: 'JSESSIONID=0.b' } })), 'b');
    fakes.get('b')!.ready = 200;
    await balancer.pool.checkAll();
    assert.equal(who(await send(port, { headers: { cookie: 'JSESSIONID=0.b' } })), 'b');
  });

  test('the periodic health check runs at its interval', async () => {
    const { fakes, balancer } = await setup([], { healthIntervalMs: 20 });
    fakes.get('c')!.ready = 500;
    await waitFor(() => balancer.stats().backends[2]!.up === false, 'c down by the periodic check');
    fakes.get('c')!.ready = 200;
    await waitFor(() => balancer.stats().backends[2]!.up, 'c up again');
  });
});

describe('clowder balancer: proxying', () => {
  test('adds X-Forwarded-For/-Proto, drops hop-by-hop headers, keeps every Set-Cookie', async () => {
    const { port, fakes } = await setup();
    fakes.get('a')!.handler = (req, res) => {
      res.setHeader('set-cookie', ['JSESSIONID=1.a; Path=/', 'other=2']);
      res.setHeader('x-secret-hop', 'no');
      res.setHeader('connection', 'x-secret-hop');
      res.end(JSON.stringify(req.headers));
    };
    const r = await send(port, {
      headers: { cookie: 'JSESSIONID=1.a', 'x-forwarded-for': '203.0.113.9', connection: 'x-drop', 'x-drop': '1' },
    });
    const seen = JSON.parse(r.body) as Record<string, string>;
    assert.equal(seen['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-drop'], undefined, 'a header named in Connection is not forwarded');
    assert.equal(seen.cookie, 'JSESSIONID=1.a');
    assert.deepEqual(r.headers['set-cookie'], ['JSESSIONID=1.a; Path=/', 'other=2']);
    assert.equal(r.headers['x-secret-hop'], undefined);
  });

  test('streams: the client reads the first part of a response before the node ends it', async () => {
    const { port, fakes } = await setup();
    let finish: () => void = () => {};
    fakes.get('a')!.handler = (_req, res) => {
      res.writeHead(200);
      res.write('first;');
      finish = () => res.end('last');
    };
    const body = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, headers: { cookie: 'JSESSIONID=0.a' }, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
          if (text === 'first;') finish();
        });
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(body, 'first;last');
  });

  test('keeps connections to a node alive across requests', async () => {
    const { port, fakes, balancer } = await setup();
    await balancer.pool.checkAll(); // health checks connect on their own
    await send(port, { headers: { cookie: 'JSESSIONID=0.c' } });
    const after1 = fakes.get('c')!.connections;
    for (let i = 0; i < 5; i++) await send(port, { headers: { cookie: 'JSESSIONID=0.c' } });
    assert.equal(fakes.get('c')!.connections, after1);
  });

  test('a request head larger than maxHeaderBytes gets 431', async () => {
    const { port, fakes, balancer } = await setup([], { maxHeaderBytes: 2048 });
    const before = fakes.get('a')!.seen.length;
    const r = await send(port, { headers: { 'x-big': 'y'.repeat(4000) } });
    assert.equal(r.status, 431);
    assert.equal(fakes.get('a')!.seen.length, before);
    assert.equal(balancer.stats().badRequests, 1, 'counted');
  });

  test('connections beyond maxConnections are closed at once and counted', async () => {
    const { port, balancer } = await setup([], { maxConnections: 1 });
    const first = connect(port, '127.0.0.1');
    await new Promise((r) => first.once('connect', r));
    // Held open without a request; the server accepts connections in order, so it counts first.
    const second = connect(port, '127.0.0.1');
    await new Promise((r) => second.once('close', r));
    assert.equal(balancer.stats().refusedConnections, 1);
    first.destroy();
  });

  test('stop() lets a request in flight finish', async () => {
    const { port, fakes, balancer } = await setup();
    let release: () => void = () => {};
    fakes.get('a')!.handler = (_req, res) => {
      release = () => res.end('done');
    };
    const pending = send(port, { headers: { cookie: 'JSESSIONID=0.a' } });
    await waitFor(() => fakes.get('a')!.seen.length > 0, 'the request reached a');
    const stopped = balancer.stop();
    release();
    assert.equal((await pending).body, 'done');
    await stopped;
  });
});

describe('clowder balancer: configuration', () => {
  test('flags and CLOWDER_BALANCER_* environment variables', () => {
    const c = resolveBalancerConfig(
      balancerConfigFrom(
        { backend: ['a=127.0.0.1:1', 'b=[::1]:2'], port: '9' },
        { CLOWDER_BALANCER_HEALTH_INTERVAL: '250', CLOWDER_BALANCER_PORT: '7' },
      ),
    );
    assert.equal(c.port, 9);
    assert.equal(c.healthIntervalMs, 250);
    assert.deepEqual(c.backends[1], { route: 'b', host: '::1', port: 2 });
    const env = resolveBalancerConfig(balancerConfigFrom({}, { CLOWDER_BALANCER_BACKENDS: 'x=h:1,y=h:2' }));
    assert.deepEqual(
      env.backends.map((b) => b.route),
      ['x', 'y'],
    );
  });

  test('errors name the key', () => {
    assert.throws(
      () => parseBackend('127.0.0.1:8081'),
      (e: ConfigError) => e.key === 'balancer.backends',
    );
    assert.throws(
      () => resolveBalancerConfig({ backends: [] }),
      (e: ConfigError) => e.key === 'balancer.backends',
    );
    assert.throws(
      () => resolveBalancerConfig({ backends: [{ route: 'a', host: 'h', port: 70000 }] }),
      (e: ConfigError) => e.key === 'balancer.backends.0.port',
    );
    assert.throws(
      () => resolveBalancerConfig({ backends: [{ route: 'a', host: 'h', port: 1 }], helthIntervalMs: 5 }),
      (e: ConfigError) => e instanceof ConfigError && /helthIntervalMs/.test(e.message),
    );
  });
});
