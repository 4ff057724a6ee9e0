/**
 * The asking side of a BackupManager fetch: a node about to serve a session it does not hold asks
 * every member serving the context for its copy (FETCH) and waits for all their answers
 * (FETCHED: a record or null). A member removed meanwhile answers nothing (its part of the wait
 * ends at once, not at a timeout); the wait ends at `timeoutMs` at the latest. The copies are then
 * merged by their stamps (the newest write of every attribute wins), so whichever holders answer,
 * the session comes back with its latest value. Concurrent requests for one session share a fetch.
 */
import type { Member } from '../channel/types.js';
import { type FetchedMsg, fetchMsg } from './backup-messages.js';
import { isSessionId, newRequestId } from './ids.js';
import type { Session } from './session.js';

/** Fetches in flight at once; more are refused (counted) rather than fanned out. */
export const MAX_FETCHES = 1024;

/** The fetch counters (BackupManager stats). */
export interface FetchCounters {
  /** Sessions fetched from other members for a request. */
  fetches: number;
  /** Fetches nobody held a copy for. */
  fetchMisses: number;
  /** Fetches that ended by timeout with answers missing. */
  fetchTimeouts: number;
  /** Fetches refused: too many in flight. */
  refusedFetches: number;
  /** Fetches whose likely holders (the cookie's route and its backups) did not serve the session: everyone else was asked. */
  fetchFallbacks: number;
}

/** What a fetch needs of its manager. */
export interface FetchesHost {
  readonly contextName: string;
  /** This node's member id. */
  readonly localId: string;
  /** How long a fetch waits for answers (sessions.ownershipTimeoutMs). */
  readonly timeoutMs: number;
  readonly counters: FetchCounters;
  /** The members serving the context. */
  members(): readonly Member[];
  /**
   * The members likely to hold `id` when the node named `route` served it last (the cookie's
   * route suffix): that node and its backups by placement; asked first. Undefined: ask everyone.
   */
  likely?(id: string, route: string, members: readonly Member[]): readonly Member[] | undefined;
  /** Sends after what is queued. */
  post(to: readonly Member[], message: readonly unknown[]): void;
  /** Checks and merges one record from `from` (refusals counted). */
  applyRecord(raw: unknown, from: Member, now: number): void;
  /** The session now held here, if any (after the records were merged). */
  find(id: string): Session | undefined;
  /** Whether the id ended lately here (a tombstone): never fetched back. */
  endedLately(id: string): boolean;
  refuse(from: Member, why: string): void;
}

interface Wait {
  readonly id: string;
  readonly readOnly: boolean;
  readonly waiting: Set<string>;
  readonly records: [unknown, Member][];
  timer: NodeJS.Timeout;
  /** Members asked so far (a second round asks the others). */
  readonly asked: Set<string>;
  /** Only the likely holders were asked yet. */
  firstRound: boolean;
  readonly done: () => void;
}

export class Fetches {
  readonly #pending = new Map<string, Promise<Session | undefined>>();
  readonly #waits = new Map<number, Wait>();
  /**
   * Fetches that ended without the answer of some members (timed out), by request id: the session
   * and those members. Such a member may serve the session (a pause, a slow link) and is then
   * asked for it (ACQUIRE): its late answer, which precedes its GRANT on the connection, merges
   * then (bounded, oldest first; forgotten after twice timeoutMs).
   */
  readonly #late = new Map<number, { id: string; from: Set<string>; until: number }>();
  #stopping = false;

  constructor(private readonly host: FetchesHost) {}

  /**
   * Fetches session `id`; undefined at once when there is nobody to ask, the id is malformed or
   * ended lately, or too many fetches are in flight (counted). `readOnly`: the asker only reads it
   * (the owner then does not send it the changes that follow), so it is not shared with a writer's.
   */
  fetch(id: string, readOnly: boolean, route?: string): Promise<Session | undefined> | undefined {
    const host = this.host;
    if (!isSessionId(id) || host.endedLately(id)) return undefined;
    const key = readOnly ? `r${id}` : id;
    const pending = this.#pending.get(key);
    if (pending !== undefined) return pending;
    const members = host.members();
    if (members.length === 0) return undefined;
    if (this.#waits.size >= MAX_FETCHES) {
      host.counters.refusedFetches++;
      return undefined;
    }
    let requestId = newRequestId();
    while (this.#waits.has(requestId)) requestId = newRequestId();
    // One round trip to the likely holders first; everyone only when none of them serves it.
    const likely = route === undefined ? undefined : host.likely?.(id, route, members);
    const firstRound = likely !== undefined && likely.length > 0 && likely.length < members.length;
    const asked = firstRound ? likely : members;
    const p = new Promise<void>((resolve) => {
      const ids = asked.map((m) => m.id);
      this.#waits.set(requestId, {
        id,
        readOnly,
        waiting: new Set(ids),
        records: [],
        timer: this.#arm(requestId),
        asked: new Set(ids),
        firstRound,
        done: resolve,
      });
    })
      .then(() => {
        const s = host.find(id);
        if (s === undefined) host.counters.fetchMisses++;
        else host.counters.fetches++;
        return s;
      })
      .finally(() => this.#pending.delete(key));
    this.#pending.set(key, p);
    host.post(asked, fetchMsg(host.contextName, id, requestId, readOnly));
    return p;
  }

  #arm(requestId: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.#settle(requestId, true), this.host.timeoutMs);
    timer.unref();
    return timer;
  }

  /**
   * The likely holders answered (or were removed) and none serves the session (no copy naming
   * its sender as owner): the others are asked too. False when there is nobody else to ask.
   */
  #secondRound(requestId: number, w: Wait): boolean {
    w.firstRound = false;
    if (w.records.some(([r, from]) => (r as unknown[])[9] === from.id)) return false;
    const rest = this.host.members().filter((m) => !w.asked.has(m.id));
    if (rest.length === 0) return false;
    for (const m of rest) {
      w.asked.add(m.id);
      w.waiting.add(m.id);
    }
    clearTimeout(w.timer);
    w.timer = this.#arm(requestId);
    this.host.counters.fetchFallbacks++;
    this.host.post(rest, fetchMsg(this.host.contextName, w.id, requestId, w.readOnly));
    return true;
  }

  /**
   * Whether a fetch of `id` is under way here: its copy (applied when the answers are in) is for
   * a request about to use it, and must not be dropped before the request begins.
   */
  fetching(id: string): boolean {
    return this.#pending.has(id) || this.#pending.has(`r${id}`);
  }

  /** FETCHED: taken only from a member asked, for the session asked. */
  onFetched(m: FetchedMsg, from: Member): void {
    const w = this.#waits.get(m[2]);
    if (w === undefined && this.#lateAnswer(m, from)) return;
    if (w === undefined || !w.waiting.delete(from.id)) {
      this.host.refuse(from, 'a fetch answer this node did not ask that member for');
      return;
    }
    if (m[3] !== null) {
      if ((m[3] as unknown[])[0] !== w.id) this.host.refuse(from, 'a fetch answer for another session');
      else w.records.push([m[3], from]);
    }
    if (w.waiting.size === 0) this.#settle(m[2], false);
  }

  /** A late answer of a member a timed-out fetch lacked: merged when it is that session's, still held here. */
  #lateAnswer(m: FetchedMsg, from: Member): boolean {
    const late = this.#late.get(m[2]);
    if (late === undefined || late.until < Date.now() || !late.from.delete(from.id)) return false;
    if (late.from.size === 0) this.#late.delete(m[2]);
    if (m[3] !== null && (m[3] as unknown[])[0] === late.id && this.host.find(late.id) !== undefined)
      this.host.applyRecord(m[3], from, Date.now());
    return true;
  }

  /** `memberId` was removed: it will not answer; waits that only lacked its answer end now. */
  memberRemoved(memberId: string): void {
    for (const [requestId, w] of this.#waits)
      if (w.waiting.delete(memberId) && w.waiting.size === 0) this.#settle(requestId, false);
  }

  /** Stopping: every wait ends now (with what arrived). */
  cancel(): void {
    this.#stopping = true;
    for (const requestId of [...this.#waits.keys()]) this.#settle(requestId, false);
  }

  #settle(requestId: number, timedOut: boolean): void {
    const w = this.#waits.get(requestId);
    if (w === undefined) return;
    if (w.firstRound && !timedOut && !this.#stopping && this.#secondRound(requestId, w)) return;
    this.#waits.delete(requestId);
    clearTimeout(w.timer);
    const now = Date.now();
    if (timedOut) this.host.counters.fetchTimeouts++;
    if (timedOut && w.waiting.size > 0) {
      for (const [r, late] of this.#late) if (late.until < now || this.#late.size >= MAX_FETCHES) this.#late.delete(r);
      this.#late.set(requestId, { id: w.id, from: new Set(w.waiting), until: now + 2 * this.host.timeoutMs });
    }
    const me = this.host.localId;
    // Who serves the session: the member whose copy names itself. The merged copy's owner (that
    // of the highest version) may be stale: a holder no longer sent the changes can name this
    // very node (a former owner), which would then serve its fetched copy as owner without
    // asking anyone — a second owner, and lost writes.
    let claimed: string | undefined;
    let named: string | undefined;
    for (const [record, from] of w.records) {
      this.host.applyRecord(record, from, now);
      const owner = (record as unknown[])[9];
      if (owner === from.id) claimed = from.id;
      else if (typeof owner === 'string' && owner !== '' && owner !== me) named ??= owner;
      named ??= from.id;
    }
    const s = this.host.find(w.id);
    if (s !== undefined && s.active <= 0 && s.ownerId !== claimed) {
      // Nobody claimed it but a member did not answer: that member may serve it, so it is asked
      // (ACQUIRE), not a holder whose old copy may name this node as owner and would grant it:
      // two owners, and this node serving a stale value.
      const owner = claimed ?? this.#silent(w) ?? (s.ownerId === me || s.ownerId === '' ? named : undefined);
      if (owner !== undefined) {
        s.ownerId = owner;
        s.primary = false;
      }
    }
    w.done();
  }

  /** The first member asked that did not answer and is still a member: it may be the one serving the session. */
  #silent(w: Wait): string | undefined {
    if (w.waiting.size === 0) return undefined;
    const members = this.host.members();
    for (const id of w.waiting) if (members.some((m) => m.id === id)) return id;
    return undefined;
  }
}
