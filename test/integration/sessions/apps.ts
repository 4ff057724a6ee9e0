/**
 * Inline applications for the session tests: the counter example (loaded from examples/) and a
 * probe app whose endpoints expose what `req.session` does, answering JSON.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pathToFileURL } from 'node:url';
import type { DeltaManager, RequestListener, SessionHandle } from '../../../src/index.js';
import type { Counter } from '../../../src/session/counters.js';
import {
  COUNTER_APP,
  CookieJar,
  idOf,
  managerOf,
  RawConnection,
  type SessionRequest,
  type StartOptions,
  type TestCluster,
} from '../../helpers/http.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * A GET of `path` on `port` that reaches the node ahead of a change: in one turn of the event loop
 * the test's nodes share, the request goes into the node's HTTP socket, then node `writer` sets
 * the counter app's `count` of session `id` and sends it at once, into the node's cluster socket.
 * The node's next poll finds both ready and names the HTTP socket first (the connection was used
 * once before, so the node already polls its end of it). Returns the body of the answer.
 */
export async function aheadOfChange(
  cluster: TestCluster,
  port: number,
  path: string,
  cookie: string,
  writer: string,
  count: number,
): Promise<string> {
  const conn = await RawConnection.open(port);
  try {
    conn.send('/app/health');
    await conn.body();
    conn.send(path, cookie);
    const m = managerOf(cluster.node(writer), APP);
    const s = m.sessions.get(idOf(cookie))!;
    s.setAttribute('count', count);
    m.replicate(s);
    cluster.node(writer).channel.flushNow();
    return await conn.body();
  } finally {
    conn.close();
  }
}

/** A session made through `/probe/set?name&value` on `port`, once `other` holds it too. */
export async function probeSessionOn(
  cluster: TestCluster,
  port: number,
  other: string,
  name: string,
  value: string,
): Promise<CookieJar> {
  const jar = new CookieJar();
  await jar.get(port, `/probe/set?name=${name}&value=${value}`);
  const m = managerOf(cluster.node(other), PROBE);
  await waitFor(() => m.sessions.get(jar.id)?.getAttribute(name) === value, `${other} to receive the session`);
  return jar;
}

/** A DeltaManager counter by name. */
export function stat(m: DeltaManager, key: Counter): number {
  return m.stats()[key];
}

/** How many messages of `type` (e.g. "acquire") a manager received. */
export function received(m: DeltaManager, type: string): number {
  return (m.stats().received as Record<string, number>)[type] ?? 0;
}

/** The counter example app as a request listener. */
export const counter = (await import(pathToFileURL(COUNTER_APP).href)).default as RequestListener;

export function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(body);
}

function split(req: IncomingMessage): { path: string; q: URLSearchParams } {
  const url = new URL(req.url ?? '/', 'http://x');
  return { path: url.pathname, q: url.searchParams };
}

function errorOf(fn: () => void): { code?: string; message: string; name: string } | null {
  try {
    fn();
    return null;
  } catch (err) {
    const e = err as Error & { code?: string };
    return { code: e.code, message: e.message, name: e.name };
  }
}

/** Attributes of a session as plain JSON (Sets/Maps are not used by these tests). */
function attrsOf(s: SessionHandle | undefined): Record<string, unknown> | null {
  if (s === undefined) return null;
  // Null prototype: an attribute named __proto__ becomes an own property, as JSON.parse makes it.
  const out: Record<string, unknown> = Object.create(null);
  for (const name of s.getAttributeNames()) out[name] = s.getAttribute(name);
  return out;
}

/** Rendezvous points: each caller waits until `parties` callers reached the same gate. */
const gates = new Map<string, { arrived: number; release: (() => void)[] }>();
export function rendezvous(name: string, parties: number): Promise<void> {
  let g = gates.get(name);
  if (g === undefined) {
    g = { arrived: 0, release: [] };
    gates.set(name, g);
  }
  g.arrived++;
  const gate = g;
  return new Promise<void>((resolve) => {
    gate.release.push(resolve);
    if (gate.arrived >= parties) {
      gates.delete(name);
      for (const r of gate.release) r();
    }
  });
}

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

/**
 * The probe app. Endpoints (relative to its mount):
 *   /whoami                  { id, route, originalRoute, isNew }
 *   /attrs                   { id, attrs } of the existing session (attrs null when none)
 *   /get?name=               { value } of req.session[name] (a property read)
 *   /set?name=&value=        sets a string attribute
 *   /set-number?name=&value= sets a number attribute
 *   /delete?name=            removes an attribute (delete req.session[name])
 *   /set-wait?name=&value=&gate=&parties=  sets, then waits for `parties` requests at `gate` before answering
 *   /cart/add?n=             req.session.cart ??= { items: [] }; req.session.cart.items.push(n)
 *   /cart/poison             pushes a function into cart.items in place
 *   /bad                     tries a function and a class instance, then sets ok=1
 *   /invalidate              req.session.invalidate()
 *   /max?seconds=            req.session.setMaxInactiveInterval(seconds) (any integer, negative too)
 *   /regenerate              await req.session.regenerate(): { oldId, newId }
 *   /rich                    sets `rich`: Date, Map, Set, bigint, bytes, nested values
 *   /end-twice               sets `twice`, then res.end('first') and res.end('second')
 *   /try-writes              tries every way of changing the session: { errors by way, attrs }
 *   /static/…, /ro/…         the same endpoints (for replicationFilter and readOnlyFilter tests)
 *   anything else            the counter app
 */
export const probe: RequestListener = async (req, res) => {
  const r = req as SessionRequest;
  const split0 = split(req);
  const q = split0.q;
  const p0 = split0.path;
  const path = p0.startsWith('/static/') ? p0.slice('/static'.length) : p0.startsWith('/ro/') ? p0.slice(3) : p0;
  const name = q.get('name') ?? 'k';
  switch (path) {
    case '/whoami': {
      const s = r.getSession()!; // Tomcat's getSession(): creates it (reading req.session would not)
      return json(res, 200, { id: s.id, route: r.jvmRoute, originalRoute: s.originalRoute ?? null, isNew: s.isNew() });
    }
    case '/attrs': {
      const s = r.getSession(false);
      return json(res, 200, { id: s?.id ?? null, attrs: attrsOf(s) });
    }
    case '/get':
      return json(res, 200, { value: r.session[name] ?? null });
    case '/set':
      r.session[name] = q.get('value') ?? '';
      return json(res, 200, { id: r.session.id });
    case '/set-number':
      r.session[name] = Number(q.get('value'));
      return json(res, 200, { id: r.session.id });
    case '/delete':
      delete r.session[name];
      return json(res, 200, { id: r.session.id });
    case '/set-wait': {
      const s = r.session;
      s[name] = q.get('value') ?? '';
      await rendezvous(q.get('gate') ?? 'g', Number(q.get('parties') ?? 2));
      return json(res, 200, { id: s.id });
    }
    case '/cart/add': {
      const s = r.session as SessionHandle & { cart?: { items: unknown[] } };
      s.cart ??= { items: [] };
      s.cart.items.push(Number(q.get('n')));
      return json(res, 200, { id: s.id, items: s.cart.items });
    }
    case '/cart/poison': {
      const s = r.session as SessionHandle & { cart?: { items: unknown[] } };
      s.cart?.items.push(() => 1);
      return json(res, 200, { id: s.id });
    }
    case '/bad': {
      const s = r.session;
      const fn = errorOf(() => {
        s.fn = () => 1;
      });
      const cls = errorOf(() => {
        s.point = new Point(1, 2);
      });
      const nested = errorOf(() => {
        s.nested = { a: [1, { f: () => 2 }] };
      });
      const viaSetAttribute = errorOf(() => s.setAttribute('fn2', () => 3));
      s.ok = 1;
      return json(res, 200, {
        id: s.id,
        fn,
        cls,
        nested,
        viaSetAttribute,
        after: { fn: typeof s.fn, point: typeof s.point, nested: typeof s.nested },
        names: s.getAttributeNames(),
      });
    }
    case '/end-twice':
      r.session.twice = 1;
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('first');
      res.end('second');
      return;
    case '/regenerate': {
      const s = r.session;
      const oldId = s.id;
      await s.regenerate({ keep: q.get('keep') === '1' });
      return json(res, 200, { oldId, newId: s.id });
    }
    case '/rich': {
      const s = r.session;
      s.rich = {
        date: new Date(1_700_000_000_000),
        map: new Map<unknown, unknown>([
          [1, 'one'],
          ['k', [1, 2]],
        ]),
        set: new Set(['a', 'b']),
        big: 12345678901234567890n,
        bytes: Buffer.from([0, 1, 254, 255]),
        nested: { n: null, u: undefined, f: -0.5, nan: Number.NaN, list: [true, false] },
        proto: Object.assign(Object.create(null), { x: 1 }),
      };
      return json(res, 200, { id: s.id });
    }
    case '/max': {
      const s = r.session;
      s.setMaxInactiveInterval(Number(q.get('seconds')));
      return json(res, 200, { id: s.id, maxInactiveInterval: s.getMaxInactiveInterval() });
    }
    case '/try-writes': {
      const s = r.getSession(false);
      if (s === undefined) return json(res, 200, { id: null, errors: null, attrs: null });
      const errors = {
        assign: errorOf(() => {
          s.w = 1;
        }),
        delete: errorOf(() => {
          delete s.k;
        }),
        setAttribute: errorOf(() => s.setAttribute('w', 2)),
        removeAttribute: errorOf(() => s.removeAttribute('k')),
        setMaxInactiveInterval: errorOf(() => s.setMaxInactiveInterval(5)),
        assignMaxInactiveInterval: errorOf(() => {
          s.maxInactiveInterval = 5;
        }),
        invalidate: errorOf(() => s.invalidate()),
        destroyBySettingNull: errorOf(() => {
          (r as { session: unknown }).session = null;
        }),
        regenerate: await s.regenerate().then(
          () => null,
          (e: Error & { code?: string }) => ({ code: e.code, message: e.message, name: e.name }),
        ),
      };
      return json(res, 200, { id: s.id, errors, attrs: attrsOf(s), max: s.getMaxInactiveInterval() });
    }
    case '/invalidate': {
      const s = r.getSession(false);
      const id = s?.id ?? null;
      s?.invalidate();
      return json(res, 200, { id });
    }
    default:
      return counter(req, res);
  }
};

/** The usual pair of applications: the counter example at /app and the probe at /probe. */
export const COUNTER_AND_PROBE: NonNullable<StartOptions['apps']> = [
  { path: '/app', module: COUNTER_APP },
  { path: '/probe', app: probe },
];
/** Their indexes in a node's managers (managerOf(node, APP | PROBE)). */
export const APP = 0;
export const PROBE = 1;
