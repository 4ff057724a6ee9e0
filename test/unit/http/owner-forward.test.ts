/**
 * Owner forwarding (src/http/owner-forward.ts) between two plain HTTP servers on loopback: a
 * "front" node whose listener forwards, and an "owner" that answers. No cluster: the owner is
 * whatever target() returns, so each case sets it up.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../../../src/core/logger.js';
import type { Mount } from '../../../src/http/adapters.js';
import { FORWARDED_HEADER, type ForwardTarget, OwnerForward } from '../../../src/http/owner-forward.js';
import type { SessionManager } from '../../../src/session/session-manager.js';
import { freePorts } from '../../helpers/wait.js';

const ID = 'A'.repeat(32);
const COOKIE = `JSESSIONID=${ID}.owner`;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  const server = createServer(handler);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const portOf = (s: Server) => (s.address() as AddressInfo).port;

describe('owner forwarding (HTTP proxy to the session owner)', () => {
  let owner: Server;
  let front: Server;
  let target: ForwardTarget | undefined;
  let servedHere: { method: string; body: string }[];
  let forward: OwnerForward;
  /** What the owner saw of the last request. */
  let seen: { headers: IncomingMessage['headers']; url: string; bytes: number } | undefined;
  /** How the owner answers: normal, or break the connection after reading the body. */
  let ownerMode: 'answer' | 'break' = 'answer';

  const manager = { config: { cookieName: 'JSESSIONID' } } as unknown as SessionManager;
  const mount = { contextPath: '/app', manager, app: () => {} } as unknown as Mount;

  before(async () => {
    owner = await listen((req, res) => {
      let bytes = 0;
      const hash = new Uint32Array(1);
      req.on('data', (c: Buffer) => {
        for (const b of c) hash[0] = Math.imul(hash[0]! ^ b, 16777619);
        bytes += c.length;
      });
      req.on('end', () => {
        seen = { headers: req.headers, url: req.url!, bytes };
        if (ownerMode === 'break') {
          req.socket.destroy();
          return;
        }
        res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/']);
        res.setHeader('Keep-Alive', 'timeout=77');
        res.setHeader('X-Owner', 'yes');
        res.writeHead(201, 'Made');
        res.end(`bytes=${bytes} hash=${hash[0]}`);
      });
    });
    servedHere = [];
    front = await listen((req, res) => {
      const serveHere = (_m: Mount, r: IncomingMessage, s: ServerResponse) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => {
          servedHere.push({ method: r.method!, body: Buffer.concat(chunks).toString() });
          s.end('here');
        });
      };
      if (!forward.forward(req, res, mount, req.url!, serveHere)) serveHere(mount, req, res);
    });
    forward = new OwnerForward({ localName: 'front', target: () => target, logger: silentLogger });
  });
  after(async () => {
    forward.close();
    await new Promise((r) => front.close(r));
    await new Promise((r) => owner.close(r));
  });

  const toOwner = () => {
    target = { name: 'owner', host: '127.0.0.1', port: portOf(owner) };
  };

  test('a request with a session cookie is proxied to the owner: body streamed intact, answer relayed, hop-by-hop headers dropped', async () => {
    toOwner();
    ownerMode = 'answer';
    const body = Buffer.alloc(1024 * 1024 + 7);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const hash = new Uint32Array(1);
    for (const b of body) hash[0] = Math.imul(hash[0]! ^ b, 16777619);
    const before = { ...forward.counters };
    const reply = await send(
      portOf(front),
      'POST',
      '/app/x?y=1',
      {
        cookie: COOKIE,
        host: 'shop.example',
        'x-forwarded-for': '203.0.113.9',
        connection: 'keep-alive, x-private',
        'x-private': 'hop',
      },
      body,
    );
    assert.equal(reply.status, 201);
    assert.equal(reply.body.toString(), `bytes=${body.length} hash=${hash[0]}`, 'the whole body reached the owner');
    assert.deepEqual(reply.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/'], 'every Set-Cookie relayed');
    assert.equal(reply.headers['x-owner'], 'yes');
    assert.notEqual(reply.headers['keep-alive'], 'timeout=77', "the owner's Keep-Alive is not relayed");
    assert.equal(seen?.url, '/app/x?y=1', 'the original URL (context path included)');
    assert.equal(seen?.headers.host, 'shop.example', 'Host kept');
    assert.equal(seen?.headers[FORWARDED_HEADER], 'front');
    assert.equal(seen?.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1', 'the client appended');
    assert.equal(seen?.headers['x-private'], undefined, 'a header Connection lists is not passed on');
    assert.equal(forward.counters.forwarded, before.forwarded + 1);
  });

  test('keep-alive: many sequential requests reuse the connections to the owner', async () => {
    toOwner();
    ownerMode = 'answer';
    let accepted = 0;
    const count = () => accepted++;
    owner.on('connection', count);
    try {
      for (let i = 0; i < 20; i++)
        assert.equal((await send(portOf(front), 'GET', '/app/c', { cookie: COOKIE })).status, 201);
    } finally {
      owner.off('connection', count);
    }
    assert.ok(accepted <= 1, `${accepted} new connections for 20 requests`);
  });

  test('not forwarded: a request already forwarded once, one without a session cookie, an upgrade, no target', async () => {
    toOwner();
    const before = { ...forward.counters };
    servedHere = [];
    await send(portOf(front), 'GET', '/app/a', { cookie: COOKIE, [FORWARDED_HEADER]: 'elsewhere' });
    await send(portOf(front), 'GET', '/app/b', {});
    await send(portOf(front), 'GET', '/app/c', { cookie: 'JSESSIONID=not-an-id' });
    await send(portOf(front), 'GET', '/app/d', { cookie: COOKIE, connection: 'upgrade', upgrade: 'websocket' });
    target = undefined;
    await send(portOf(front), 'GET', '/app/e', { cookie: COOKIE });
    assert.equal(servedHere.length, 5, 'all served here');
    assert.equal(forward.counters.forwarded, before.forwarded);
    assert.equal(forward.counters.received, before.received + 1, 'the forwarded one counted as received');
  });

  test('an owner that refuses the connection: served here, the body unread until then', async () => {
    const [closed] = await freePorts(1);
    target = { name: 'gone', host: '127.0.0.1', port: closed! };
    servedHere = [];
    const before = { ...forward.counters };
    const reply = await send(portOf(front), 'POST', '/app/p', { cookie: COOKIE }, Buffer.from('the body'));
    assert.equal(reply.body.toString(), 'here');
    assert.deepEqual(servedHere, [{ method: 'POST', body: 'the body' }]);
    assert.equal(forward.counters.servedHere, before.servedHere + 1);
  });

  test('an owner that breaks off before answering: a request without a body is served here, one whose body was sent gets 502', async () => {
    toOwner();
    ownerMode = 'break';
    try {
      servedHere = [];
      const before = { ...forward.counters };
      const get = await send(portOf(front), 'GET', '/app/g', { cookie: COOKIE });
      assert.equal(get.body.toString(), 'here');
      const post = await send(portOf(front), 'POST', '/app/p', { cookie: COOKIE }, Buffer.from('x'.repeat(1000)));
      assert.equal(post.status, 502);
      assert.match(post.body.toString(), /bad gateway/);
      assert.deepEqual(
        servedHere.map((s) => s.method),
        ['GET'],
      );
      assert.equal(forward.counters.servedHere, before.servedHere + 1);
      assert.equal(forward.counters.failed, before.failed + 1);
    } finally {
      ownerMode = 'answer';
    }
  });

  test('drop(): connections to a member that left are closed; the next request connects anew', async () => {
    toOwner();
    assert.equal((await send(portOf(front), 'GET', '/app/c', { cookie: COOKIE })).status, 201);
    let accepted = 0;
    const count = () => accepted++;
    owner.on('connection', count);
    try {
      assert.equal((await send(portOf(front), 'GET', '/app/c', { cookie: COOKIE })).status, 201);
      assert.equal(accepted, 0, 'the kept connection reused');
      forward.drop('127.0.0.1', portOf(owner));
      assert.equal((await send(portOf(front), 'GET', '/app/c', { cookie: COOKIE })).status, 201);
      assert.equal(accepted, 1, 'a new connection after drop()');
    } finally {
      owner.off('connection', count);
    }
  });
});
