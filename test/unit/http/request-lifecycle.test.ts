// The per-request state machine both HTTP bindings share (src/http/request-lifecycle.ts), over a
// scripted session manager: no node, no socket. Which manager calls a request makes, in which
// order (the HTTP contract of session-manager.ts), for every wait: the take-over, the input that
// came with the request, the BackupManager's fetch, the sessions.serialize turn; and a client that
// goes away during each of them. Then the two bindings over the same manager.
import * as assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import {
  resolveSessionConfig,
  type SessionConfig,
  type SessionConfigInput,
} from '../../../src/config/session-config.js';
import { RequestLifecycle } from '../../../src/http/request-lifecycle.js';
import { RequestSession } from '../../../src/http/request-session.js';
import { SessionBinding } from '../../../src/http/session-binding.js';
import { newSessionId } from '../../../src/session/ids.js';
import { RequestQueue } from '../../../src/session/request-queue.js';
import { Session } from '../../../src/session/session.js';
import type { SessionManager } from '../../../src/session/session-manager.js';

/** A promise and its resolve. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Lets every microtask queued so far (and those they queue) run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

/** A session manager that records the calls of the HTTP contract and answers as scripted. */
class FakeManager implements SessionManager {
  readonly log: string[] = [];
  readonly sessions = new Map<string, Session>();
  readonly serializer: RequestQueue;
  readonly config: SessionConfig;
  readonly route = 'self';
  readonly localId = 'member-self';
  readonly ready = true;
  /** What the next acquire() returns (a take-over to wait for). */
  acquireWait: Promise<void> | undefined;
  /** copyMayTrail's answer, and what inputHandled() returns. */
  trails = false;
  input = deferred();
  /** fetchSession's answer when set (a BackupManager); its arguments are logged. */
  fetch: Promise<Session | undefined> | undefined;
  hasFetch = false;
  /** What requestCompleted returns (synchronous mode). */
  completedWait: Promise<void> | undefined;
  turn = deferred();

  constructor(input: SessionConfigInput = {}) {
    this.config = resolveSessionConfig({ batchResponses: false, ...input });
    this.serializer = new RequestQueue({ yieldTo: () => undefined }, this.config.serializeTimeoutMs, 2);
  }

  /** A session held here, under a fresh id. */
  add(): Session {
    const s = new Session(newSessionId(), 0, 0, 1800, this);
    this.sessions.set(s.id, s);
    return s;
  }
  once(): unknown {
    return this;
  }
  servesRoute(route: string): boolean {
    return route === this.route;
  }
  findSession(id: string): Session | undefined {
    this.log.push('find');
    return this.sessions.get(id);
  }
  fetchSession(_id: string, _now?: number, readOnly?: boolean, route?: string) {
    if (!this.hasFetch) return undefined;
    this.log.push(`fetch readOnly=${readOnly} route=${route}`);
    return this.fetch;
  }
  createSession(): Session {
    this.log.push('create');
    return this.add();
  }
  createSessionWithId(): Session | undefined {
    return undefined;
  }
  endedLately(): boolean {
    return false;
  }
  acquire(): Promise<void> | undefined {
    this.log.push('acquire');
    const w = this.acquireWait;
    this.acquireWait = undefined;
    return w;
  }
  copyMayTrail(): boolean {
    this.log.push('copyMayTrail');
    return this.trails;
  }
  inputHandled(): Promise<void> {
    this.log.push('inputHandled');
    return this.input.promise;
  }
  turnWritten(): Promise<void> {
    this.log.push('turnWritten');
    return this.turn.promise;
  }
  requestStarted(s: Session): void {
    s.active++;
    this.log.push('started');
  }
  requestCompleted(s: Session, replicate = true): Promise<void> | undefined {
    s.active--;
    this.log.push(`completed replicate=${replicate}`);
    return this.completedWait;
  }
  readCompleted(s: Session): void {
    s.active--;
    this.log.push('readCompleted');
  }
  requestAbandoned(s: Session): void {
    s.active--;
    this.log.push('abandoned');
  }
  replicate(): Promise<void> | undefined {
    return undefined;
  }
  invalidate(s: Session): Promise<void> | undefined {
    s.valid = false;
    this.sessions.delete(s.id);
    return undefined;
  }
  attributeChanged(): void {}
  changeSessionId(s: Session): { id: string; sent: Promise<void> | undefined } {
    return { id: s.id, sent: undefined };
  }
}

/** The smallest binding: records the hooks. */
class TestRequest extends RequestLifecycle {
  readonly hooks: string[] = [];
  replicates = true;
  constructor(
    manager: SessionManager,
    cookie: string | undefined,
    readOnly = false,
    readonly path = '/',
  ) {
    super(manager, readOnly);
    this.open(cookie);
  }
  protected requestPath(): string {
    return this.path;
  }
  protected using(_s: Session, rehomedFrom: string | undefined): void {
    this.hooks.push(`using rehomedFrom=${rehomedFrom}`);
  }
  protected sessionLost(): void {
    this.hooks.push('lost');
  }
  protected ending(): boolean {
    this.hooks.push('ending');
    return this.replicates;
  }
  alsoWaitFor(p: Promise<void>): void {
    this.waitFor(p);
  }
  /** Invalidates the session (destroy()): the response waits for `p`. */
  destroy(p?: Promise<void>): void {
    const s = this.session;
    if (s === undefined) return;
    s.invalidate();
    this.waitFor(p);
    this.drop(s);
  }
}

const cookieOf = (s: Session, route = 'self') => `${s.id}.${route}`;

/** A manager holding a session another node owns: the take-over (acquire) ends when `handOver` resolves. */
function ownedElsewhere(input?: SessionConfigInput): { m: FakeManager; s: Session; handOver: { resolve: () => void } } {
  const m = new FakeManager(input);
  const s = m.add();
  const handOver = deferred();
  m.acquireWait = handOver.promise;
  return { m, s, handOver };
}

/** Makes `m` a BackupManager whose next fetch answers when the test resolves it. */
function scriptFetch(m: FakeManager): {
  promise: Promise<Session | undefined>;
  resolve: (s: Session | undefined) => void;
} {
  const fetched = deferred<Session | undefined>();
  m.hasFetch = true;
  m.fetch = fetched.promise;
  return fetched;
}

describe('RequestLifecycle: the HTTP contract, one request', () => {
  it('a held session, nothing to wait for: no promise; finish ends it once', () => {
    const m = new FakeManager();
    const s = m.add();
    const r = new TestRequest(m, cookieOf(s));
    assert.equal(r.ready, undefined);
    assert.equal(r.session, s);
    assert.deepEqual(m.log, ['find', 'started', 'acquire', 'copyMayTrail']);
    assert.deepEqual(r.hooks, ['using rehomedFrom=undefined']);
    assert.equal(r.finish(), undefined);
    assert.equal(r.finish(), undefined);
    assert.deepEqual(m.log.slice(4), ['completed replicate=true']);
    assert.equal(s.active, 0);
    assert.equal(r.abandoned, false);
  });

  it('no cookie, a malformed id, an unknown id: no session, nothing claimed', () => {
    const m = new FakeManager();
    for (const cookie of [undefined, 'short', `${'A'.repeat(32)}.self`]) {
      const r = new TestRequest(m, cookie);
      assert.equal(r.session, undefined);
      assert.equal(r.ready, undefined);
      assert.equal(r.finish(), undefined);
    }
    assert.deepEqual(m.log, ['find']);
  });

  it('a cookie naming another route: served here, originalRoute keeps it; the replicationFilter flag reaches the manager', () => {
    const m = new FakeManager();
    const s = m.add();
    const r = new TestRequest(m, cookieOf(s, 'other'));
    assert.equal(r.originalRoute, 'other');
    assert.deepEqual(r.hooks, ['using rehomedFrom=other']);
    r.replicates = false;
    r.finish();
    assert.deepEqual(m.log.slice(-1), ['completed replicate=false']);
  });

  it('take-over: ready until the owner handed over; then the application may run', async () => {
    const { m, s, handOver } = ownedElsewhere();
    const r = new TestRequest(m, cookieOf(s));
    assert.ok(r.ready);
    assert.deepEqual(m.log, ['find', 'started', 'acquire']);
    handOver.resolve();
    await r.ready;
    assert.equal(r.ready, undefined);
    assert.equal(r.session, s);
    assert.equal(r.abandoned, false);
    r.finish();
    assert.deepEqual(m.log.slice(3), ['completed replicate=true']);
  });

  it('client gone during the take-over: abandoned, the owner keeps the session; the hand-over changes nothing later', async () => {
    const { m, s, handOver } = ownedElsewhere();
    const r = new TestRequest(m, cookieOf(s));
    const ready = r.ready;
    assert.equal(r.finish(), undefined);
    assert.equal(r.abandoned, true);
    assert.deepEqual(m.log.slice(3), ['abandoned']);
    handOver.resolve();
    await ready;
    assert.deepEqual(m.log.slice(3), ['abandoned'], 'no second end');
    assert.equal(s.active, 0);
    assert.deepEqual(r.hooks, ['using rehomedFrom=undefined'], 'ending never ran');
  });

  it('invalidated during the take-over: the request goes on without it (ended unreplicated, sessionLost)', async () => {
    const { m, s, handOver } = ownedElsewhere();
    const r = new TestRequest(m, cookieOf(s));
    s.valid = false;
    handOver.resolve();
    await r.ready;
    assert.equal(r.session, undefined);
    assert.deepEqual(r.hooks, ['using rehomedFrom=undefined', 'lost']);
    assert.deepEqual(m.log.slice(3), ['completed replicate=false']);
    assert.equal(r.finish(), undefined);
    assert.equal(m.log.length, 4, 'nothing more at the end');
  });

  it('a copy that may trail: waits for the input that came with the request; a read-only request never takes over', async () => {
    const m = new FakeManager();
    const s = m.add();
    m.trails = true;
    const r = new TestRequest(m, cookieOf(s), true);
    assert.ok(r.ready);
    assert.deepEqual(m.log, ['find', 'started', 'copyMayTrail', 'inputHandled']);
    m.input.resolve();
    await r.ready;
    assert.equal(r.ready, undefined);
    r.finish();
    assert.deepEqual(m.log.slice(4), ['readCompleted']);
  });

  it('the response waits: for the turn (batchResponses), the synchronous replication, an invalidation, or both', async () => {
    const m = new FakeManager({ batchResponses: true });
    const turn = new TestRequest(m, cookieOf(m.add())).finish();
    assert.ok(turn);
    assert.deepEqual(m.log.slice(-2), ['completed replicate=true', 'turnWritten']);

    const sync = deferred();
    m.completedWait = sync.promise;
    assert.equal(new TestRequest(m, cookieOf(m.add())).finish(), sync.promise, 'the replication, not the turn');

    const invalidated = deferred();
    const destroyed = new TestRequest(m, cookieOf(m.add()));
    destroyed.destroy(invalidated.promise);
    assert.equal(destroyed.session, undefined);
    assert.deepEqual(m.log.slice(-1), ['completed replicate=false']);
    assert.equal(destroyed.finish(), invalidated.promise, 'the invalidation only: nothing left to replicate');

    const both = new TestRequest(m, cookieOf(m.add()));
    const other = deferred();
    both.alsoWaitFor(other.promise);
    const end = both.finish();
    assert.ok(end);
    let done = false;
    end.then(() => (done = true));
    sync.resolve();
    await settle();
    assert.equal(done, false, 'still waiting for the other');
    other.resolve();
    await settle();
    assert.equal(done, true);
  });
});

describe('RequestLifecycle: the BackupManager fetch', () => {
  it('not held: fetched (readOnly and the cookie route passed), then used as if found', async () => {
    const m = new FakeManager();
    const fetched = scriptFetch(m);
    const id = newSessionId();
    const r = new TestRequest(m, `${id}.other`);
    assert.ok(r.ready);
    assert.deepEqual(m.log, ['find', 'fetch readOnly=false route=other']);
    const s = new Session(id, 0, 0, 1800, m);
    fetched.resolve(s);
    await r.ready;
    assert.equal(r.ready, undefined);
    assert.equal(r.session, s);
    assert.equal(r.originalRoute, 'other');
    assert.deepEqual(m.log.slice(2), ['started', 'acquire', 'copyMayTrail']);
  });

  it('a fetch whose use waits (take-over): ready chains to it', async () => {
    const m = new FakeManager();
    const fetched = scriptFetch(m);
    const handOver = deferred();
    m.acquireWait = handOver.promise;
    const id = newSessionId();
    const r = new TestRequest(m, `${id}.self`);
    const ready = r.ready!;
    let done = false;
    ready.then(() => (done = true));
    fetched.resolve(new Session(id, 0, 0, 1800, m));
    await settle();
    assert.equal(done, false, 'still taking over');
    handOver.resolve();
    await ready;
    assert.equal(r.ready, undefined);
  });

  it('no member holds it: no session', async () => {
    const m = new FakeManager();
    m.hasFetch = true;
    m.fetch = Promise.resolve(undefined);
    const r = new TestRequest(m, `${newSessionId()}.self`);
    await r.ready;
    assert.equal(r.session, undefined);
    assert.equal(r.abandoned, false);
  });

  it('client gone while fetching: abandoned, and the fetched session is not used', async () => {
    const m = new FakeManager();
    const fetched = scriptFetch(m);
    const id = newSessionId();
    const r = new TestRequest(m, `${id}.self`);
    const ready = r.ready;
    assert.equal(r.finish(), undefined);
    assert.equal(r.abandoned, true);
    fetched.resolve(new Session(id, 0, 0, 1800, m));
    await ready;
    assert.equal(r.session, undefined);
    assert.deepEqual(m.log, ['find', 'fetch readOnly=false route=self'], 'never started');
  });
});

describe('RequestLifecycle: sessions.serialize', () => {
  it('one request of a session at a time: the second runs once the first ended', async () => {
    const m = new FakeManager({ serialize: true });
    const s = m.add();
    const a = new TestRequest(m, cookieOf(s));
    assert.equal(a.ready, undefined, 'the lock was free');
    const b = new TestRequest(m, cookieOf(s));
    assert.ok(b.ready);
    assert.equal(b.session, undefined, 'not started while it waits');
    a.finish();
    await b.ready;
    assert.equal(b.session, s);
    assert.equal(b.busy, false);
    b.finish();
    assert.equal(s.serialHeld, false, 'the lock is free again');
    assert.equal(s.active, 0);
  });

  it('only matching paths serialize; a read-only request never does', () => {
    const m = new FakeManager({ serialize: '^/cart' });
    const s = m.add();
    const a = new TestRequest(m, cookieOf(s), false, '/cart/add');
    assert.equal(s.serialHeld, true);
    const other = new TestRequest(m, cookieOf(s), false, '/page');
    assert.equal(other.ready, undefined);
    const read = new TestRequest(m, cookieOf(s), true, '/cart/view');
    assert.equal(read.ready, undefined);
    for (const r of [a, other, read]) r.finish();
    assert.equal(s.serialHeld, false);
  });

  it('client gone while queued: abandoned, leaves the queue, the lock passes on', async () => {
    const m = new FakeManager({ serialize: true });
    const s = m.add();
    const a = new TestRequest(m, cookieOf(s));
    const b = new TestRequest(m, cookieOf(s));
    const c = new TestRequest(m, cookieOf(s));
    const bReady = b.ready;
    b.finish();
    assert.equal(b.abandoned, true);
    await bReady;
    assert.equal(b.session, undefined, 'b never used it');
    a.finish();
    await c.ready;
    assert.equal(c.session, s, 'c is next');
    c.finish();
    assert.equal(m.serializer.stats().serializeAborted, 1);
    assert.equal(m.serializer.waiting, 0);
    assert.equal(s.active, 0);
  });

  it('the queue full: busy at once', () => {
    const m = new FakeManager({ serialize: true });
    const s = m.add();
    const rs = [0, 1, 2].map(() => new TestRequest(m, cookieOf(s)));
    const full = new TestRequest(m, cookieOf(s));
    assert.equal(full.busy, true);
    assert.equal(full.ready, undefined);
    for (const r of [...rs, full]) r.finish();
    assert.equal(s.serialHeld, false);
  });

  it('the turn came but the take-over outlived the timeout: busy, the session given back, the lock passed on', async () => {
    const { m, s, handOver } = ownedElsewhere({ serialize: true, serializeTimeoutMs: 100 });
    const a = new TestRequest(m, cookieOf(s));
    assert.ok(a.ready);
    await a.ready;
    assert.equal(a.busy, true);
    assert.equal(a.session, undefined);
    assert.deepEqual(a.hooks, ['using rehomedFrom=undefined', 'lost']);
    assert.deepEqual(m.log.slice(-1), ['abandoned']);
    assert.equal(s.serialHeld, false, 'the lock passed on');
    assert.equal(a.finish(), undefined);
    assert.equal(s.active, 0);
    handOver.resolve();
  });
});

/** Request and response enough for the bindings (headers kept in a Map). */
function http(cookie: string | undefined, url = '/') {
  const headers = new Map<string, string | string[]>();
  const req = { headers: cookie === undefined ? {} : { cookie }, url, socket: {} } as unknown as IncomingMessage;
  const res = {
    headersSent: false,
    getHeader: (n: string) => headers.get(n.toLowerCase()),
    setHeader: (n: string, v: string | string[]) => headers.set(n.toLowerCase(), v),
    removeHeader: (n: string) => headers.delete(n.toLowerCase()),
  } as unknown as ServerResponse;
  return { req, res, headers };
}

describe('the two bindings over the shared lifecycle', () => {
  it('Fastify/Koa binding: a fetch asks the cookie route first, as the middleware does', () => {
    const m = new FakeManager();
    scriptFetch(m);
    const { req } = http(`${m.config.cookieName}=${newSessionId()}.other`);
    const b = new SessionBinding(m, req);
    assert.ok(b.ready);
    assert.deepEqual(m.log, ['find', 'fetch readOnly=false route=other']);
  });

  it('invalidated while taken over on failover: neither binding re-issues a cookie for it', async () => {
    for (const which of ['middleware', 'binding'] as const) {
      const { m, s, handOver } = ownedElsewhere();
      const { req, res, headers } = http(`${m.config.cookieName}=${s.id}.other`);
      const r = which === 'middleware' ? new RequestSession(m, m.config, req, res, '/') : new SessionBinding(m, req);
      assert.equal(r.originalRoute, 'other', which);
      s.valid = false;
      handOver.resolve();
      await r.ready;
      assert.equal(r.session, undefined, which);
      r.finish();
      const cookie = r instanceof SessionBinding ? r.setCookieHeader() : headers.get('set-cookie');
      assert.equal(cookie, undefined, `${which}: no Set-Cookie for the invalidated session`);
    }
  });

  it('Koa isNew: a loaded session is not new, a created one is', () => {
    const m = new FakeManager();
    const s = m.add();
    const loaded = new SessionBinding(m, http(`${m.config.cookieName}=${s.id}.self`).req);
    assert.equal(loaded.loaded, true);
    const fresh = new SessionBinding(m, http(undefined).req);
    fresh.create();
    assert.equal(fresh.loaded, false);
    loaded.finish();
    fresh.finish();
    assert.equal(s.active, 0);
  });
});
