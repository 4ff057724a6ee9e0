/**
 * The session cookie's `Secure` flag (cookieSecure "auto"): set when the socket is TLS, or when a
 * trusted proxy (`trustProxy`) says the client used HTTPS (`X-Forwarded-Proto: https`); a header
 * from a peer that is not a trusted proxy is ignored. Node mode (`http.trustProxy`) over plain
 * HTTP, and library mode (`sessions.trustProxy`) over plain HTTP and over TLS.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createSessions, type SessionCluster, silentLogger } from '../../src/index.js';
import {
  type HttpResponse,
  portOf,
  type SessionRequest,
  startNodes,
  type TestCluster,
  throwFailures,
} from '../helpers/http.js';
import { request } from '../helpers/request.js';
import { isolatedMulticast } from '../helpers/wait.js';

function sessionLine(res: HttpResponse): string {
  assert.equal(res.status, 200, res.body);
  const line = res.setCookie.find((l) => l.startsWith('JSESSIONID='));
  assert.ok(line, `a session cookie in ${JSON.stringify(res.setCookie)}`);
  return line;
}

function isSecure(res: HttpResponse): boolean {
  return /;\s*Secure(;|$)/.test(sessionLine(res));
}

const HTTPS = { 'X-Forwarded-Proto': 'https' };

describe('Secure cookie behind proxies (node mode, http.trustProxy)', () => {
  const settings: unknown[] = [false, true, 1, ['127.0.0.1'], 'loopback, 10.0.0.0/8', ['10.0.0.0/8', 'fc00::/7'], 0];
  let cluster: TestCluster;
  const port = (i: number) => portOf(cluster.nodes[i]!);
  before(async () => {
    cluster = await startNodes(settings.length, {
      perNode: (i) => ({ http: { port: 0, trustProxy: settings[i] as never } }),
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  test('without X-Forwarded-Proto no cookie is Secure over plain HTTP, whatever trustProxy says', async () => {
    for (const [i, s] of settings.entries())
      assert.equal(isSecure(await request(port(i), '/app/counter')), false, String(s));
  });

  test('X-Forwarded-Proto: https makes the cookie Secure only when the peer (127.0.0.1) is a trusted proxy', async () => {
    const expected = [false, true, true, true, true, false, false];
    for (const [i, s] of settings.entries()) {
      const res = await request(port(i), '/app/counter', { headers: HTTPS });
      assert.equal(isSecure(res), expected[i], `trustProxy ${JSON.stringify(s)}`);
    }
  });

  test('a trusted proxy: the first X-Forwarded-Proto value counts, case-insensitively; http is not https', async () => {
    const trusted = port(1);
    for (const [value, secure] of [
      ['HTTPS', true],
      ['https, http', true],
      [' https ', true],
      ['http', false],
      ['http, https', false],
      ['', false],
      ['httpsx', false],
    ] as const) {
      const res = await request(trusted, '/app/counter', { headers: { 'X-Forwarded-Proto': value } });
      assert.equal(isSecure(res), secure, JSON.stringify(value));
    }
  });

  test('Forwarded: proto=https alone is not read (X-Forwarded-Proto is the one header, as in Express)', async () => {
    const res = await request(port(1), '/app/counter', { headers: { Forwarded: 'for=1.2.3.4;proto=https' } });
    assert.equal(isSecure(res), false);
  });
});

describe('Secure cookie in library mode (sessions.trustProxy), over TLS and plain HTTP', () => {
  const dir = mkdtempSync(join(tmpdir(), 'clowder-tls-'));
  const { port: mport, domain } = isolatedMulticast();
  const instances: SessionCluster[] = [];
  const servers: Server[] = [];

  function sessions(name: string, trustProxy: unknown): SessionCluster {
    const s = createSessions(
      {
        channel: {
          name,
          domain,
          receiver: { port: 0 },
          membership: { type: 'multicast', port: mport, frequencyMs: 100, dropTimeMs: 1000 },
        },
        sessions: { trustProxy: trustProxy as never },
      },
      { logger: silentLogger },
    );
    instances.push(s);
    return s;
  }

  function app(req: SessionRequest, res: import('node:http').ServerResponse): void {
    req.session.n = 1;
    res.end('ok');
  }

  async function listen(server: Server): Promise<number> {
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as AddressInfo).port;
  }

  let untrusting: SessionCluster;
  let trusting: SessionCluster;
  before(async () => {
    untrusting = sessions('plain', false);
    trusting = sessions('proxied', 1);
    await Promise.all(instances.map((s) => s.start()));
  });
  after(async () => {
    for (const s of servers) s.closeAllConnections();
    const first = await Promise.allSettled(servers.map((s) => new Promise((r) => s.close(r))));
    throwFailures([...first, ...(await Promise.allSettled(instances.map((s) => s.stop())))], 'cleaning up');
    rmSync(dir, { recursive: true, force: true });
  });

  test('a TLS socket makes the cookie Secure; plain HTTP with an untrusted X-Forwarded-Proto does not', async () => {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    args.push('-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1');
    execFileSync('openssl', args, { stdio: 'ignore' });
    const handler = untrusting.handler(app as never);
    const tlsPort = await listen(
      createTlsServer({ key: readFileSync(key), cert: readFileSync(cert) }, handler) as unknown as Server,
    );
    const plainPort = await listen(createServer(handler));
    assert.equal(isSecure(await request(tlsPort, '/', { tls: true })), true, 'TLS');
    assert.equal(isSecure(await request(plainPort, '/')), false, 'plain');
    assert.equal(isSecure(await request(plainPort, '/', { headers: HTTPS })), false, 'untrusted X-Forwarded-Proto');
  });

  test('sessions.trustProxy: 1 believes the proxy in front (middleware and handler)', async () => {
    const viaHandler = await listen(createServer(trusting.handler(app as never)));
    const mw = trusting.middleware();
    const viaMiddleware = await listen(createServer((req, res) => mw(req, res, () => app(req as SessionRequest, res))));
    for (const port of [viaHandler, viaMiddleware]) {
      assert.equal(isSecure(await request(port, '/', { headers: HTTPS })), true);
      assert.equal(isSecure(await request(port, '/')), false);
      assert.equal(isSecure(await request(port, '/', { headers: { 'X-Forwarded-Proto': 'http' } })), false);
    }
  });
});
