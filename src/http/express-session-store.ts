/**
 * `clowder/express-session`: an express-session Store over clowder's replicated sessions, for
 * applications that must keep express-session itself (NestJS, code that reads its internals).
 *
 *   app.use(session({ store: new ClowderStore(sessions), secret, resave: false, saveUninitialized: false }));
 *
 * - Every node holds every session (DeltaManager); a session written on one node is read on any.
 * - Each top-level key of the session is one attribute holding that key's JSON: `set` compares
 *   the JSON it is given key by key, and only changed keys replicate.
 * - Ownership: a `get` for a session another node owns takes it over first (the manager's
 *   ownership protocol) and holds it until the request's `set`, `touch` or `destroy`, so two
 *   nodes never write one session at once and no write is lost without sticky balancing. A hold
 *   whose request never wrote back (e.g. `reload()` reads twice) is let go after `holdTimeoutMs`.
 * - Ids: express-session's own (uid-safe: 24 random bytes, 32 base64url characters) are kept as
 *   the session ids. Anything else is refused and counted. A session is created only under an id
 *   express-session generated on this store (`store.generate`, which the middleware assigns and
 *   this store wraps), never under one a client presented: `set` refuses an unknown id that was
 *   not generated here, and drops (counted) a write for one invalidated or expired lately.
 * - Expiry: `cookie.originalMaxAge` becomes the session's maxInactiveInterval (seconds, rounded
 *   up); without one, the manager's maxInactiveInterval applies. `cookie.expires` is given back as
 *   the last access plus originalMaxAge.
 *
 * express-session is an optional peer dependency, imported by this module only.
 */
import type { Request } from 'express';
import session, { type SessionData } from 'express-session';
import { ClusterError, ErrorCode } from '../core/errors.js';
import { isSessionId } from '../session/ids.js';
import type { Session } from '../session/session.js';
import type { SessionManager } from '../session/session-manager.js';
import { managerOf, type SessionSource, whenReady } from './session-source.js';

export type { SessionSource } from './session-source.js';

/** The attribute that holds the session's cookie settings (express-session's top-level `cookie`). */
const COOKIE = 'cookie';
/** On a request: the id of the session it holds (its first get), so that a reload's get adds no hold. */
const kHeld = Symbol('clowder.store.held');

/** Ids generated and not yet stored, at most (the oldest forgotten first, counted). */
const MAX_ISSUED = 100_000;
/** How long a generated id may wait for its first `set` (ms). */
const ISSUED_TTL_MS = 600_000;

type Callback = (err?: unknown) => void;

export interface ClowderStoreOptions {
  /**
   * How long a session taken by `get` stays held for its request's `set`/`touch`/`destroy`
   * before it is let go (ms). Default 10000.
   */
  holdTimeoutMs?: number;
}

/** The store's counters (`store.stats()`). */
export interface ClowderStoreStats {
  /** Ids refused because they are not 32 base64url characters. */
  malformedIds: number;
  /** `set` of an id the cluster does not hold and express-session did not generate here, refused. */
  refusedIds: number;
  /** `set`/`touch` of a session invalidated or expired meanwhile: the write was dropped (the end wins). */
  droppedWrites: number;
  /** Holds let go after holdTimeoutMs without a write-back. */
  holdsExpired: number;
  /** Generated ids forgotten before their first `set` (more than 100000 waiting). */
  issuedEvicted: number;
  /** Attributes that were not JSON this store wrote (left out of `get`). */
  unreadable: number;
}

/** What express-session's generate sets on the request. */
interface IssuingRequest {
  sessionID?: string;
}

interface Hold {
  readonly session: Session;
  count: number;
  at: number;
}

/** express-session's `cookie` as stored: its JSON without `expires` (recomputed from the last access). */
interface StoredCookie {
  originalMaxAge?: number | null;
  [key: string]: unknown;
}

/**
 * An express-session store backed by a clowder session manager. Pass `createSessions()`'s result
 * (or its manager); operations wait until it has started (taken the cluster's sessions).
 */
export class ClowderStore extends session.Store {
  readonly manager: SessionManager;
  readonly #holdTimeoutMs: number;
  readonly #holds = new Map<string, Hold>();
  /** Ids express-session generated here and has not stored yet, with when (ms). */
  readonly #issued = new Map<string, number>();
  /** express-session's generate, wrapped to record the ids it makes. */
  #generateIssuing: ((req: IssuingRequest) => void) | undefined;
  readonly #stats: ClowderStoreStats = {
    malformedIds: 0,
    refusedIds: 0,
    droppedWrites: 0,
    holdsExpired: 0,
    issuedEvicted: 0,
    unreadable: 0,
  };
  #sweeper: NodeJS.Timeout | undefined;

  constructor(source: SessionSource, options: ClowderStoreOptions = {}) {
    super();
    this.manager = managerOf(source);
    if (this.manager.config.serialize !== false)
      // A Store's get(sid) does not know its request: a second get of the same request
      // (req.session.reload()) would wait for itself, and a request that never writes back holds
      // the lock until holdTimeoutMs. Refused loudly rather than not serializing silently.
      throw new TypeError(
        'ClowderStore: sessions.serialize is not supported with express-session (its Store API cannot ' +
          "tie a get to its request); use clowder's middleware (sessions.middleware()), or leave serialize false",
      );
    const t = options.holdTimeoutMs ?? 10_000;
    if (!(Number.isFinite(t) && t >= 100))
      throw new TypeError(`ClowderStore: holdTimeoutMs must be a number of milliseconds ≥ 100 (got ${String(t)})`);
    this.#holdTimeoutMs = t;
  }

  /** The session with this id, taken over from its owner if another node owns it; null if none. */
  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    if (!this.#wellFormed(sid)) {
      callback(null, null);
      return;
    }
    whenReady(this.manager, () => this.#get(sid, callback, true));
  }

  #get(sid: string, callback: (err: unknown, session?: SessionData | null) => void, retry: boolean): void {
    const s = this.#live(sid, Date.now());
    if (s === undefined) {
      // Not held here (BackupManager): fetched from the members that hold it. Otherwise created
      // on another node a moment ago: its CREATED may have come in with this request, on a socket
      // read later in this turn. Look once more when the turn's input was handled.
      const fetching = retry ? (this.manager as SessionManager).fetchSession?.(sid) : undefined;
      if (fetching !== undefined) fetching.then(() => this.#get(sid, callback, false));
      else if (retry) this.manager.inputHandled().then(() => this.#get(sid, callback, false));
      else callback(null, null);
      return;
    }
    this.#take(s, () => {
      if (!s.valid) {
        this.#release(s);
        callback(null, null);
        return;
      }
      let data: SessionData;
      try {
        data = this.#data(s);
      } catch (err) {
        this.#release(s);
        callback(err);
        return;
      }
      callback(null, data);
    });
  }

  /** Writes the session's changed top-level keys (and its expiry); releases the hold of its `get`. */
  override set(sid: string, data: SessionData, callback?: Callback): void {
    if (!this.#wellFormed(sid)) {
      callback?.(idError(sid, 'is not an express-session id (32 base64url characters)'));
      return;
    }
    whenReady(this.manager, () => this.#write(sid, data, callback ?? noop, true));
  }

  /** Marks the session used (express-session calls it when it does not save); refreshes its expiry. */
  override touch(sid: string, data: SessionData, callback?: () => void): void {
    if (!this.#wellFormed(sid)) {
      callback?.();
      return;
    }
    whenReady(this.manager, () => this.#write(sid, data, callback ?? noop, false));
  }

  #write(sid: string, data: SessionData, callback: Callback, full: boolean): void {
    const manager = this.manager;
    let s = manager.findSession(sid);
    if (s === undefined) {
      const stale = this.#holds.get(sid);
      if (stale !== undefined) this.#releaseAll(stale.session); // ended while its request ran
      if (!full) {
        callback(); // touching a session that is gone does nothing (as MemoryStore)
        return;
      }
      if (manager.endedLately(sid)) {
        // Invalidated or expired while its request ran: the end wins.
        this.#stats.droppedWrites++;
        callback();
        return;
      }
      if (!this.#issued.delete(sid)) {
        this.#stats.refusedIds++;
        callback(
          idError(sid, 'is not held by the cluster and was not generated by express-session here: it is never adopted'),
        );
        return;
      }
      try {
        s = manager.createSessionWithId(sid);
      } catch (err) {
        callback(err); // maxActiveSessions
        return;
      }
      if (s === undefined) {
        callback(idError(sid, 'cannot be used')); // cannot happen: checked above
        return;
      }
      this.#hold(s);
      this.#apply(s, data, full, callback);
      return;
    }
    const session = s;
    if (this.#holds.get(sid)?.session === session) this.#apply(session, data, full, callback);
    else this.#take(session, () => this.#apply(session, data, full, callback)); // a write without a get here
  }

  #apply(s: Session, data: SessionData, full: boolean, callback: Callback): void {
    if (!s.valid) {
      this.#stats.droppedWrites++;
      this.#release(s);
      callback();
      return;
    }
    try {
      if (full) writeKeys(s, data);
      writeCookie(s, data, this.manager.config.maxInactiveInterval);
    } catch (err) {
      this.#release(s);
      callback(err);
      return;
    }
    const done = this.#release(s);
    if (done === undefined) callback();
    else done.then(() => callback(), callback);
  }

  /** Invalidates the session on every node. */
  override destroy(sid: string, callback?: Callback): void {
    if (!this.#wellFormed(sid)) {
      callback?.();
      return;
    }
    whenReady(this.manager, () => {
      const s = this.manager.sessions.get(sid);
      if (s === undefined || !s.valid) {
        callback?.();
        return;
      }
      const sent = s.invalidate();
      this.#releaseAll(s);
      if (sent === undefined) callback?.();
      else sent.then(() => callback?.(), callback);
    });
  }

  /** Every live session, by id (as express-session's MemoryStore gives them). Takes none over. */
  override all(callback: (err: unknown, obj?: { [sid: string]: SessionData } | null) => void): void {
    whenReady(this.manager, () => {
      const out: { [sid: string]: SessionData } = {};
      const now = Date.now();
      try {
        for (const id of [...this.manager.sessions.keys()]) {
          const s = this.#live(id, now);
          if (s !== undefined) out[id] = this.#data(s);
        }
      } catch (err) {
        callback(err);
        return;
      }
      callback(null, out);
    });
  }

  /** How many live sessions the cluster holds. */
  override length(callback: (err: unknown, length?: number) => void): void {
    whenReady(this.manager, () => {
      let n = 0;
      const now = Date.now();
      for (const id of [...this.manager.sessions.keys()]) if (this.#live(id, now) !== undefined) n++;
      callback(null, n);
    });
  }

  /** Invalidates every session, on every node. */
  override clear(callback?: Callback): void {
    whenReady(this.manager, () => {
      const sends: Promise<void>[] = [];
      for (const s of [...this.manager.sessions.values()]) {
        if (!s.valid) continue;
        const sent = s.invalidate();
        if (sent !== undefined) sends.push(sent);
        this.#releaseAll(s);
      }
      if (sends.length === 0) callback?.();
      else Promise.all(sends).then(() => callback?.(), callback);
    });
  }

  /**
   * express-session makes `req.session` from what `get` gave (at load, and again after
   * `req.session.reload()`): a request holds its session once, so the hold a reload's `get` added
   * is dropped here — the request's one write-back then releases the session.
   */
  override createSession(req: Request, data: SessionData): session.Session & SessionData {
    const sid = (req as { sessionID?: unknown }).sessionID;
    if (typeof sid === 'string') {
      const r = req as Request & { [kHeld]?: string };
      if (r[kHeld] === sid) this.#dropExtraHold(sid);
      else r[kHeld] = sid;
    }
    return super.createSession(req, data);
  }

  /** Counters of refused or dropped input. */
  stats(): ClowderStoreStats {
    return { ...this.#stats };
  }

  /** Lets go of every hold and stops the hold timer (the manager is not stopped). */
  close(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const h of [...this.#holds.values()]) this.#releaseAll(h.session, true);
  }

  // ---- holds: a get takes the session for its request; the request's write releases it -------

  /** Holds `s` for a request, and calls `then` once this node may serve it (owner, input applied). */
  #take(s: Session, then: () => void): void {
    this.#hold(s);
    const wait = this.manager.acquire(s) ?? (this.manager.copyMayTrail(s) ? this.manager.inputHandled() : undefined);
    if (wait === undefined) then();
    else wait.then(then);
  }

  #hold(s: Session): void {
    const now = Date.now();
    this.manager.requestStarted(s, now);
    const h = this.#holds.get(s.id);
    if (h !== undefined && h.session === s) {
      h.count++;
      h.at = now;
    } else this.#holds.set(s.id, { session: s, count: 1, at: now });
    this.#armSweeper();
  }

  #armSweeper(): void {
    if (this.#sweeper !== undefined) return;
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(50, this.#holdTimeoutMs / 2));
    this.#sweeper.unref();
  }

  /** The request is done with `s`: replicates what it changed. The promise: sync mode, or the turn's batch written. */
  #release(s: Session): Promise<void> | undefined {
    const h = this.#holds.get(s.id);
    if (h !== undefined && h.session === s) {
      if (--h.count <= 0) this.#holds.delete(s.id);
    }
    const sent = this.manager.requestCompleted(s);
    if (sent !== undefined || !this.manager.config.batchResponses || !s.valid) return sent;
    // express-session ends the response in the callback: after the change left for the others.
    return this.manager.turnWritten();
  }

  #dropExtraHold(sid: string): void {
    const h = this.#holds.get(sid);
    if (h === undefined || h.count < 2) return;
    h.count--;
    this.manager.requestCompleted(h.session, false); // its request still holds it: nothing is sent now
  }

  /** Ends every hold on `s` (destroyed, cleared, timed out): without claiming it (`abandon`) or as its last writer. */
  #releaseAll(s: Session, abandon = false): void {
    const h = this.#holds.get(s.id);
    if (h === undefined || h.session !== s) return;
    this.#holds.delete(s.id);
    for (let i = 0; i < h.count; i++) {
      if (abandon) this.manager.requestAbandoned(s);
      else this.manager.requestCompleted(s);
    }
  }

  #sweep(): void {
    const limit = Date.now() - this.#holdTimeoutMs;
    for (const h of [...this.#holds.values()]) {
      if (h.at > limit) continue;
      this.#stats.holdsExpired += h.count;
      // Its request never wrote back: let the owner's claim go without claiming the session.
      this.#releaseAll(h.session, true);
    }
    const old = Date.now() - ISSUED_TTL_MS;
    for (const [id, at] of this.#issued) {
      if (at > old) break; // in order of issue
      this.#issued.delete(id);
    }
    if (this.#holds.size === 0 && this.#issued.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /** The live session with this id: the manager's, unless it expired by {@link #expiredHere} (then ended everywhere). */
  #live(sid: string, now: number): Session | undefined {
    const s = this.manager.findSession(sid, now);
    if (s === undefined || !this.#expiredHere(s, now)) return s;
    s.invalidate();
    return undefined;
  }

  /**
   * express-session's exact expiry (`cookie.expires`: the last use plus originalMaxAge, in ms),
   * where this node knows the last use: it owns the session (every request on it ran here since
   * it took it over) and no request uses it now. Elsewhere the manager's expiry (whole seconds) applies.
   */
  #expiredHere(s: Session, now: number): boolean {
    if (s.active > 0 || s.ownerId !== this.manager.localId || s.maxInactiveInterval <= 0) return false;
    const idle = now - s.lastAccessedTime;
    // maxInactiveInterval is originalMaxAge rounded up to seconds: below this, not expired.
    if (idle <= (s.maxInactiveInterval - 1) * 1000) return false;
    const maxAge = originalMaxAge(s);
    return maxAge !== null && idle >= maxAge;
  }

  // ---- ids and data -----------------------------------------------------------------------------

  #wellFormed(sid: unknown): sid is string {
    if (typeof sid === 'string' && isSessionId(sid)) return true;
    this.#stats.malformedIds++;
    return false;
  }

  /**
   * express-session's `generate(req)`, which its middleware assigns to the store: wrapped so that
   * the ids it generates (and only those) may create sessions.
   */
  get generate(): ((req: IssuingRequest) => void) | undefined {
    return this.#generateIssuing;
  }

  set generate(fn: ((req: IssuingRequest) => void) | undefined) {
    this.#generateIssuing =
      fn === undefined
        ? undefined
        : (req) => {
            fn(req);
            if (typeof req.sessionID === 'string') this.#issue(req.sessionID);
          };
  }

  #issue(sid: string): void {
    if (this.#issued.size >= MAX_ISSUED) {
      this.#issued.delete(this.#issued.keys().next().value!);
      this.#stats.issuedEvicted++;
    }
    this.#issued.set(sid, Date.now());
    this.#armSweeper();
  }

  /** The session as express-session stores it: each key's value parsed anew, and the cookie. */
  #data(s: Session): SessionData {
    const out: Record<string, unknown> = {};
    let cookie: StoredCookie | undefined;
    for (const name of s.attributeNames()) {
      const json = s.getAttribute(name);
      let value: unknown;
      try {
        value = typeof json === 'string' ? JSON.parse(json) : undefined;
      } catch {
        value = undefined;
      }
      if (value === undefined || name === '__proto__') {
        this.#stats.unreadable++;
        continue;
      }
      if (name === COOKIE) cookie = value !== null && typeof value === 'object' ? (value as StoredCookie) : undefined;
      else out[name] = value;
    }
    // A session stored without a cookie is given back without one (as MemoryStore would).
    if (cookie !== undefined) {
      const maxAge = typeof cookie.originalMaxAge === 'number' ? cookie.originalMaxAge : null;
      out.cookie = {
        ...cookie,
        originalMaxAge: maxAge,
        expires: maxAge === null ? null : new Date(s.lastAccessedTime + maxAge).toISOString(),
      };
    }
    return out as unknown as SessionData;
  }
}

/** The stored cookie's originalMaxAge (ms), or null. */
function originalMaxAge(s: Session): number | null {
  const json = s.getAttribute(COOKIE);
  if (typeof json !== 'string') return null;
  try {
    const v = (JSON.parse(json) as StoredCookie | null)?.originalMaxAge;
    return typeof v === 'number' ? v : null;
  } catch {
    return null;
  }
}

/** Sets each top-level key whose JSON changed, removes the keys that are gone (the cookie apart). */
function writeKeys(s: Session, data: SessionData): void {
  const record = data as unknown as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    if (name === COOKIE) continue;
    const json = JSON.stringify(record[name]);
    if (json === undefined) {
      if (s.hasAttribute(name)) s.removeAttribute(name);
    } else if (s.getAttribute(name) !== json) s.setAttribute(name, json);
  }
  for (const name of s.attributeNames()) {
    if (name !== COOKIE && !Object.hasOwn(record, name)) s.removeAttribute(name);
  }
}

/** The cookie's settings (without `expires`) as one attribute; originalMaxAge as the idle timeout. */
function writeCookie(s: Session, data: SessionData, defaultMaxInactive: number): void {
  const c = (data as { cookie?: unknown }).cookie;
  if (c === null || typeof c !== 'object') {
    if (s.hasAttribute(COOKIE)) s.removeAttribute(COOKIE); // stored as given, without one
    return;
  }
  const j = (typeof (c as { toJSON?: unknown }).toJSON === 'function' ? (c as { toJSON(): unknown }).toJSON() : c) as {
    expires?: unknown;
    originalMaxAge?: unknown;
  };
  const { expires: _expires, ...settings } = j;
  const json = JSON.stringify(settings);
  if (s.getAttribute(COOKIE) !== json) s.setAttribute(COOKIE, json);
  const maxAge = settings.originalMaxAge;
  const seconds =
    typeof maxAge === 'number' && Number.isFinite(maxAge) && maxAge > 0
      ? Math.min(31_536_000, Math.ceil(maxAge / 1000))
      : defaultMaxInactive;
  if (s.maxInactiveInterval !== seconds) s.setMaxInactiveInterval(seconds);
}

function idError(sid: string, why: string): ClusterError {
  return new ClusterError(
    ErrorCode.SESSION_ID,
    `express-session store: session id ${JSON.stringify(sid.slice(0, 40))} ${why}`,
  );
}

function noop(): void {}
export default ClowderStore;
