/**
 * Differential test of the drop-in claim: the same Express applications (test/fixtures/drop-in-apps.ts,
 * in the style of express's examples/session and examples/auth, and a passport-local login),
 * unchanged except for their session middleware, answer the same scripted client
 *   (a) on express-session 1.19 + MemoryStore, one node, and
 *   (b) on clowder's middleware on two nodes, the first stopped half-way (failover), and
 *   (c) on express-session itself with clowder's Store (clowder/express-session) on two nodes,
 *       failing over the same way —
 * response by response: status, body, Location, whether a session cookie is set, whether it
 * carries a new id, and its attributes (Expires as the lifetime it gives). The one difference
 * allowed is clowder's re-issue of the cookie on the node that takes over (its route changed, for
 * the balancer); that cookie must have the attributes the client's cookie had (a persistent one
 * stays persistent). clowder also sends Max-Age next to Expires; the two must agree. (c) must
 * answer exactly as (a): express-session makes every cookie there.
 */
import assert from 'node:assert/strict';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import type { Express, RequestHandler } from 'express';
import session from 'express-session';
import { ClowderStore } from '../../../src/http/express-session-store.js';
import { createSessions, type SessionCluster, silentLogger } from '../../../src/index.js';
import { authApp, passportApp, sessionApp } from '../../fixtures/drop-in-apps.js';
import { throwFailures } from '../../helpers/http.js';
import { isolatedMulticast, waitFor } from '../../helpers/wait.js';

const COOKIE = 'connect.sid';

interface Step {
  /** Description; also the transcript's key. */
  say: string;
  method?: 'GET' | 'POST';
  path: string;
  form?: Record<string, string>;
  /** (b): stop the first node before this step; this and later steps go to the second. */
  failover?: boolean;
  /** Send this client's cookie from before step `n` instead of the current one (a stale cookie). */
  oldCookieOf?: number;
}

interface CookieRecord {
  /** The session id differs from the one the client had. */
  newId: boolean;
  /** Attribute name (lower case) → value; Expires as "lifetime ≈ N min". Max-Age dropped after checking it. */
  attrs: Record<string, string>;
}

interface Entry {
  say: string;
  status: number;
  body: string;
  location: string | null;
  cookie: CookieRecord | null;
}

/** The session id in a cookie value: express-session `s:<id>.<sig>` (URL-encoded), clowder `<id>.<route>`. */
function idOf(value: string): string {
  const v = decodeURIComponent(value);
  return v.startsWith('s:') ? v.slice(2, v.lastIndexOf('.')) : v.slice(0, v.indexOf('.'));
}

function cookieRecord(
  line: string,
  date: number,
  previousId: string | undefined,
): { rec: CookieRecord; value: string } {
  const [pair, ...rest] = line.split(/;\s*/);
  const value = pair!.slice(COOKIE.length + 1);
  const attrs: Record<string, string> = {};
  for (const a of rest) {
    const eq = a.indexOf('=');
    attrs[(eq < 0 ? a : a.slice(0, eq)).toLowerCase()] = eq < 0 ? '' : a.slice(eq + 1);
  }
  if (attrs.expires !== undefined) {
    const expires = Date.parse(attrs.expires);
    if (attrs['max-age'] !== undefined)
      assert.ok(
        Math.abs(expires - (date + Number(attrs['max-age']) * 1000)) <= 2000,
        `Max-Age and Expires agree: ${line}`,
      );
    attrs.expires = `lifetime ≈ ${Math.round((expires - date) / 60_000)} min`;
  } else assert.equal(attrs['max-age'], undefined, `Max-Age only with Expires: ${line}`);
  delete attrs['max-age'];
  return { rec: { newId: idOf(value) !== previousId, attrs }, value };
}

function request(
  port: number,
  step: Step,
  cookie: string | undefined,
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const body = step.form ? new URLSearchParams(step.form).toString() : undefined;
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: step.path,
        method: step.method ?? 'GET',
        agent: false,
        headers: {
          ...(cookie ? { cookie } : {}),
          ...(body
            ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) }
            : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }),
        );
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`${step.path} timed out`)));
    req.end(body);
  });
}

/** Where a script runs: the port for a step, and what to do at the failover step. */
interface Target {
  port(step: Step): number;
  failover(): Promise<void>;
}

/** Runs `script` as one client (a cookie jar) against `target`; returns the transcript. */
async function run(script: Step[], target: Target): Promise<Entry[]> {
  const out: Entry[] = [];
  let cookie: string | undefined;
  const history: (string | undefined)[] = [];
  for (const step of script) {
    if (step.failover) await target.failover();
    history.push(cookie);
    const sent = step.oldCookieOf !== undefined ? history[step.oldCookieOf] : cookie;
    const res = await request(target.port(step), step, sent);
    const lines = (res.headers['set-cookie'] ?? []).filter((l) => l.startsWith(`${COOKIE}=`));
    assert.ok(lines.length <= 1, `at most one session cookie per response: ${lines.join(' | ')}`);
    let rec: CookieRecord | null = null;
    if (lines.length === 1) {
      const date = Date.parse(res.headers.date ?? '') || Date.now();
      const r = cookieRecord(lines[0]!, date, cookie === undefined ? undefined : idOf(cookie.slice(COOKIE.length + 1)));
      rec = r.rec;
      cookie = `${COOKIE}=${r.value}`;
    }
    out.push({
      say: step.say,
      status: res.status,
      body: res.body,
      location: res.headers.location ?? null,
      cookie: rec,
    });
  }
  return out;
}

async function listen(app: Express): Promise<Server> {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

function close(server: Server | undefined): Promise<void> {
  if (server === undefined) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** (a): express-session with its MemoryStore, one server. */
async function onExpressSession(makeApp: (s: RequestHandler) => Express, script: Step[]): Promise<Entry[]> {
  const mw = session({
    name: COOKIE,
    secret: 'differential secret',
    resave: false,
    saveUninitialized: false,
    cookie: { sameSite: 'lax' },
  });
  const server = await listen(makeApp(mw));
  try {
    return await run(script, { port: () => portOf(server), failover: async () => {} });
  } finally {
    await close(server);
  }
}

/** (b): clowder's middleware on two nodes; the failover stops the first node and its server. */
function onClowder(makeApp: (s: RequestHandler) => Express, script: Step[]): Promise<Entry[]> {
  return onTwoNodes(makeApp, script, (n) => n.middleware() as unknown as RequestHandler);
}

/** (c): express-session with clowder's Store on two nodes, failing over as (b). */
function onStore(makeApp: (s: RequestHandler) => Express, script: Step[]): Promise<Entry[]> {
  return onTwoNodes(makeApp, script, (n) =>
    session({
      name: COOKIE,
      secret: 'differential secret',
      resave: false,
      saveUninitialized: false,
      cookie: { sameSite: 'lax' },
      store: new ClowderStore(n),
    }),
  );
}

async function onTwoNodes(
  makeApp: (s: RequestHandler) => Express,
  script: Step[],
  middleware: (n: SessionCluster) => RequestHandler,
): Promise<Entry[]> {
  const { port: mport, domain } = isolatedMulticast();
  const node = (name: string) =>
    createSessions(
      {
        channel: {
          name,
          domain,
          insecure: true,
          receiver: { port: 0 },
          membership: { type: 'multicast', port: mport, frequencyMs: 100, dropTimeMs: 1000 },
        },
        sessions: { cookieName: COOKIE },
      },
      { logger: silentLogger },
    );
  const nodes: SessionCluster[] = [node('x'), node('y')];
  const servers: (Server | undefined)[] = [];
  let current = 0;
  try {
    for (const n of nodes) servers.push(await listen(makeApp(middleware(n))));
    await Promise.all(nodes.map((n) => n.start()));
    await waitFor(() => nodes.every((n) => n.channel.members().length === 1), 'the two nodes to see each other');
    const [x, y] = nodes as [SessionCluster, SessionCluster];
    return await run(script, {
      port: () => portOf(servers[current]!),
      failover: async () => {
        // Everything x holds has reached y, then x goes away.
        await waitFor(
          () => [...x.manager.sessions.values()].every((s) => y.manager.sessions.get(s.id)?.version === s.version),
          'y to hold every session of x',
        );
        await close(servers[0]);
        servers[0] = undefined;
        await x.stop();
        await waitFor(() => y.channel.members().length === 0, 'y to see x gone');
        current = 1;
      },
    });
  } finally {
    const first = await Promise.allSettled(servers.map((s) => close(s)));
    throwFailures([...first, ...(await Promise.allSettled(nodes.map((n) => n.stop())))], 'cleaning up');
  }
}

/**
 * Compares the transcripts. At a failover step where (b) re-issued the cookie with the same id
 * and (a) sent none, the re-issued cookie must have the attributes of the cookie (a) last set.
 */
function compare(a: Entry[], b: Entry[], script: Step[]): void {
  const expected = structuredClone(a);
  const actual = structuredClone(b);
  let last: CookieRecord | null = null;
  for (let i = 0; i < script.length; i++) {
    const ea = expected[i]!;
    const eb = actual[i]!;
    if (script[i]!.failover && ea.cookie === null && eb.cookie !== null && !eb.cookie.newId) {
      assert.ok(last !== null, `${ea.say}: a cookie was set before the failover`);
      assert.deepEqual(eb.cookie.attrs, last.attrs, `${ea.say}: the re-issued cookie keeps its attributes`);
      eb.cookie = null;
    }
    if (ea.cookie !== null) last = ea.cookie;
  }
  assert.deepEqual(actual, expected);
}

async function differential(makeApp: (s: RequestHandler) => Express, script: Step[]): Promise<Entry[]> {
  const a = await onExpressSession(makeApp, script);
  const b = await onClowder(makeApp, script);
  compare(a, b, script);
  const c = await onStore(makeApp, script);
  assert.deepEqual(c, a, "express-session with clowder's Store answers as with its MemoryStore");
  return a;
}

const FORM_ALICE = { username: 'alice', password: 'wonderland' };

describe('drop-in: express-session + MemoryStore (1 node) vs clowder middleware and express-session + clowder Store (2 nodes, failover)', () => {
  test('examples/session style: lazy sessions, cookie only when express-session sends one, remember-me across failover', async () => {
    const t = await differential(sessionApp, [
      { say: 'read without a session', path: '/peek' },
      { say: 'read again', path: '/peek' },
      { say: 'first write', path: '/' },
      { say: 'second write (browser-session cookie: none re-sent)', path: '/' },
      { say: 'read', path: '/peek' },
      { say: 'remember me: cookie-only change', path: '/remember' },
      { say: 'write: persistent cookie re-sent', path: '/' },
      { say: 'in-place change: persistent cookie re-sent', path: '/cart/add?item=apple' },
      { say: 'after failover: write', path: '/', failover: true },
      { say: 'read after failover', path: '/peek' },
      { say: 'in-place change after failover', path: '/cart/add?item=pear' },
      { say: 'JSON of the session', path: '/json' },
      { say: 'cookie.expires set directly: cookie-only change', path: '/until' },
      { say: 'write after expires was set', path: '/' },
    ]);
    // The script proves what it claims (on express-session itself).
    assert.equal(t[0]!.cookie, null);
    assert.equal(t[1]!.cookie, null);
    assert.ok(t[2]!.cookie?.newId);
    assert.equal(t[3]!.cookie, null);
    assert.equal(t[5]!.cookie, null);
    assert.match(t[6]!.cookie?.attrs.expires ?? '', /lifetime ≈ 10080 min/);
    assert.equal(t[8]!.body, 'viewed 4 times');
    assert.match(t[11]!.body, /"sessionID":"string"/);
    assert.equal(t[12]!.cookie, null);
    assert.match(t[13]!.cookie?.attrs.expires ?? '', /lifetime ≈ 120 min/);
  });

  test('examples/auth style: flash messages, login with regenerate (pre-login data dropped), failover, logout with destroy', async () => {
    const t = await differential(authApp, [
      { say: 'restricted without login', path: '/restricted' },
      { say: 'login form shows the error', path: '/login' },
      { say: 'login form again (no message)', path: '/login' },
      { say: 'pre-login cart', path: '/cart/add?item=book' },
      { say: 'bad password', method: 'POST', path: '/login', form: { username: 'alice', password: 'x' } },
      { say: 'login form shows the failure', path: '/login' },
      { say: 'login', method: 'POST', path: '/login', form: FORM_ALICE },
      { say: 'restricted page with the success message consumed', path: '/restricted' },
      { say: 'cart after login (emptied by regenerate)', path: '/cart' },
      { say: 'restricted after failover', path: '/restricted', failover: true },
      { say: 'logout (destroy) on the other node', path: '/logout' },
      { say: 'restricted after logout', path: '/restricted' },
      { say: 'the pre-logout cookie is dead', path: '/cart', oldCookieOf: 10 },
    ]);
    assert.equal(t[8]!.body, 'cart: ');
    assert.equal(t[9]!.body, 'restricted area, alice');
    assert.equal(t[10]!.cookie, null);
    assert.equal(t[11]!.status, 302);
  });

  test('examples/auth style with "remember me": the persistent cookie stays persistent through failover', async () => {
    const t = await differential(authApp, [
      { say: 'login, remember me', method: 'POST', path: '/login', form: { ...FORM_ALICE, remember: '1' } },
      { say: 'restricted', path: '/restricted' },
      { say: 'restricted after failover', path: '/restricted', failover: true },
      { say: 'cart write after failover', path: '/cart/add?item=x' },
    ]);
    assert.match(t[0]!.cookie?.attrs.expires ?? '', /lifetime ≈ 43200 min/);
  });

  test('passport-local: failureMessage, login (regenerate + save), failover, logout (save + regenerate) on the other node', async () => {
    const t = await differential(passportApp, [
      { say: 'anonymous home (passport.session() reads the session)', path: '/' },
      { say: 'pre-login cart', path: '/cart/add?item=pre' },
      { say: 'wrong password', method: 'POST', path: '/login', form: { username: 'alice', password: 'no' } },
      { say: 'login form shows the message', path: '/login' },
      { say: 'login', method: 'POST', path: '/login', form: FORM_ALICE },
      { say: 'home as alice, pre-login cart gone', path: '/' },
      { say: 'cart as alice', path: '/cart/add?item=post' },
      { say: 'home after failover', path: '/', failover: true },
      { say: 'logout on the other node', method: 'POST', path: '/logout' },
      { say: 'home after logout: previous user data gone', path: '/' },
      { say: 'the pre-logout cookie is dead', path: '/', oldCookieOf: 8 },
    ]);
    assert.equal(t[0]!.cookie, null);
    assert.equal(t[5]!.body, 'hello alice; cart: ');
    assert.equal(t[7]!.body, 'hello alice; cart: post');
    assert.ok(t[8]!.cookie?.newId);
    assert.equal(t[9]!.body, 'hello anonymous; cart: ');
    assert.equal(t[10]!.body, 'hello anonymous; cart: ');
  });
});
