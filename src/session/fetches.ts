/**
 * The asking side of a BackupManager fetch: a node about to serve a session it does not hold asks
 * the members likely to hold it for their copy (FETCH) and waits for all their answers (FETCHED: a
 * record or null). A member removed meanwhile answers nothing (its part of the wait ends at once,
 * not at a timeout); the wait ends at `timeoutMs` at the latest. The copies are then merged by
 * their stamps (the newest write of every attribute wins), so whichever holders answer, the
 * session comes back with its latest value. Concurrent requests for one session share a fetch.
 *
 * One round trip (Tomcat's proxy and retrieve in one, and the ownership protocol with them): a
 * fetch to serve (not only read) asks with mode "take", and the owner among the asked answers once
 * its own requests on the session ended, with its copy and the ownership (FETCHED granted): no
 * ACQUIRE follows; the other answers are merged when they come. When no answer is the owner's,
 * the next round asks the members the copies name as owner (a backup receives the owner's
 * changes, so knows it) and those that members without a copy name as where it went ("moved
 * to"), as named owners ("hinted"); everyone else only when none is left to ask.
 */
import type { Member } from '../channel/types.js';
import { type FetchedMsg, type FetchMode, fetchMsg, TAKE } from './backup-messages.js';
import { isSessionId, newRequestId } from './ids.js';
import type { Session } from './session.js';

/** Fetches in flight at once; more are refused (counted) rather than fanned out. */
export const MAX_FETCHES = 1024;
/**
 * Whether a fetch to serve asks the owner to hand the session over in its answer (FETCH "take"):
 * one round trip instead of FETCH, then ACQUIRE. Its races, and what closes them: a member that
 * handed the session over and dropped its copy answers "moved to" the new owner; a member named
 * as owner whose own take is under way holds the ask until that take ended ({@link holdFor});
 * a grant is taken whenever it comes, also after the fetch ended; a request here that finds a
 * copy waits for this node's take under way before it asks anyone (ownership.ts). Off, the
 * ownership protocol follows the fetch (tests still run that path: `fetchTakes`).
 */
export const FETCH_TAKES = true;
/** Rounds a fetch asks the members named as owner again when no answer claims the session. */
const MAX_RETRIES = 3;
/** Take-fetches that ended without the owner's answer, kept so its late grant is still taken (oldest go first). */
const MAX_LATE = 256;

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
  /** Fetches that came with the session's ownership (the owner handed it over in its answer: no ACQUIRE). */
  fetchGrants: number;
  /** Fetches that asked the owner a copy named, in a second round (the owner hint). */
  fetchOwnerHints: number;
  /** Grants that arrived after their fetch ended (timeout): the record is merged and the session taken. */
  lateGrants: number;
}

/** Every fetch counter at 0. */
export function newFetchCounters(): FetchCounters {
  return {
    fetches: 0,
    fetchMisses: 0,
    fetchTimeouts: 0,
    refusedFetches: 0,
    fetchFallbacks: 0,
    fetchGrants: 0,
    fetchOwnerHints: 0,
    lateGrants: 0,
  };
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
  /**
   * `from`, the owner, handed `s` over in its answer (this node owns it now, set already): what
   * else follows a take-over (the BackupManager moves the copies to this node's backups).
   */
  granted(s: Session, from: Member): void;
}

interface Wait {
  readonly id: string;
  readonly readOnly: boolean;
  /** The FETCH's mode: true (read only), TAKE, or undefined (an asker that takes over with ACQUIRE). */
  readonly mode: FetchMode | undefined;
  /** The member that granted the session (handed it over with its answer), if any. */
  grantedBy: Member | undefined;
  readonly waiting: Set<string>;
  readonly records: [unknown, Member][];
  timer: NodeJS.Timeout;
  /** Members asked so far (a second round asks the others). */
  readonly asked: Set<string>;
  /** Only the likely holders were asked yet. */
  firstRound: boolean;
  /** Rounds that asked members named as owner again (none claimed it: a hand-over in flight). */
  retries: number;
  /** Members named by answers without a copy as where the session went ("moved to"). */
  readonly movedTo: Set<string>;
  /** Members asked as named owners (hinted: one taking the session over answers once it has). */
  readonly hinted: Set<string>;
  readonly done: () => void;
}

export class Fetches {
  readonly #pending = new Map<string, Promise<Session | undefined>>();
  readonly #waits = new Map<number, Wait>();
  /**
   * Fetches that ended without the answer of some members (timed out, or a take still owed), by
   * request id: the session and those members. Such a member may serve the session (a pause, a
   * slow link) and is then asked for it (ACQUIRE): its late answer, which precedes its GRANT on the
   * connection, merges then; a late answer to a take may hand the session over (bounded, oldest
   * first; forgotten after twice timeoutMs).
   */
  readonly #late = new Map<number, { id: string; from: Set<string>; until: number; take: boolean }>();
  /** Hinted FETCHes held for a take of that session under way here, by session id ({@link holdFor}). */
  readonly #holds = new Map<string, { promise: Promise<void>; release: () => void }>();
  #stopping = false;
  /** @internal Whether a fetch to serve asks with mode "take" ({@link FETCH_TAKES}; tests turn it on per manager). */
  takes = FETCH_TAKES;

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
    const mode: FetchMode | undefined = readOnly ? true : this.takes ? TAKE : undefined;
    const p = new Promise<void>((resolve) => {
      const ids = asked.map((m) => m.id);
      this.#waits.set(requestId, {
        id,
        readOnly,
        mode,
        grantedBy: undefined,
        waiting: new Set(ids),
        records: [],
        timer: this.#arm(requestId),
        asked: new Set(ids),
        firstRound,
        retries: 0,
        movedTo: new Set(),
        hinted: new Set(),
        done: resolve,
      });
    })
      .then(() => {
        const s = host.find(id);
        if (s === undefined) host.counters.fetchMisses++;
        else host.counters.fetches++;
        return s;
      })
      .finally(() => {
        this.#pending.delete(key);
        // After the request that fetched it began (its continuation runs in this turn): a take
        // held here is then handed over once that request ended, not before it ran.
        this.#release(id, true);
      });
    this.#pending.set(key, p);
    host.post(asked, fetchMsg(host.contextName, id, requestId, mode));
    return p;
  }

  #arm(requestId: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.#settle(requestId, true), this.host.timeoutMs);
    timer.unref();
    return timer;
  }

  /**
   * Every member asked answered (or was removed) and none serves the session (no copy naming its
   * sender as owner): asks the member a copy names as owner when it was not asked yet (the owner
   * hint), else, after a first round to the likely holders, every other member. False when there
   * is nobody else to ask.
   */
  #nextRound(requestId: number, w: Wait): boolean {
    if (w.grantedBy !== undefined || w.records.some(([r, from]) => (r as unknown[])[9] === from.id)) return false;
    const members = this.host.members();
    const me = this.host.localId;
    let rest: Member[] | undefined;
    let hinted = false;
    // The owners the copies name, and the members holders without a copy saw it go to, not asked
    // as such yet: asked "hinted" (one whose take of it is under way answers once it has it).
    const named = new Set<string>(w.movedTo);
    for (const [r] of w.records) named.add((r as unknown[])[9] as string);
    const hints = members.filter((m) => named.has(m.id) && m.id !== me && !w.hinted.has(m.id));
    if (hints.length > 0) {
      rest = hints;
      hinted = true;
      this.host.counters.fetchOwnerHints++;
    }
    if (rest === undefined && w.firstRound) {
      w.firstRound = false;
      rest = members.filter((m) => !w.asked.has(m.id));
      if (rest.length === 0) rest = undefined;
      else this.host.counters.fetchFallbacks++;
    }
    if (rest === undefined) {
      // Everyone who may hold it answered, none as its owner, and every owner named was asked: the
      // ownership is on its way between two members (a GRANT in flight: the old owner names the
      // new one, which still names whom it asked). The members named are asked again (bounded):
      // taken from such answers, the owner would be a member that no longer serves the session,
      // or this node (by its own stale copy's name), which would grant a node asking it: two owners.
      if (w.mode === true || w.retries >= MAX_RETRIES) return false;
      rest = members.filter((m) => named.has(m.id));
      if (rest.length === 0) return false;
      w.retries++;
      hinted = true;
      this.host.counters.fetchOwnerHints++;
    }
    for (const m of rest) {
      w.asked.add(m.id);
      w.waiting.add(m.id);
      if (hinted) w.hinted.add(m.id);
    }
    if (hinted) this.#release(w.id);
    clearTimeout(w.timer);
    w.timer = this.#arm(requestId);
    this.host.post(rest, fetchMsg(this.host.contextName, w.id, requestId, w.mode, hinted));
    return true;
  }

  /**
   * Whether a fetch of `id` is under way here: its copy (applied when the answers are in) is for
   * a request about to use it, and must not be dropped before the request begins.
   */
  fetching(id: string): boolean {
    return this.#pending.has(id) || this.#pending.has(`r${id}`);
  }

  /**
   * The take of `id` under way here, if any: its answer may hand the session over. (Only a take:
   * an ACQUIRE held up by a fetch that cannot bring the ownership can wait in a cycle with this
   * node's own ACQUIRE that follows, until ownershipTimeoutMs.)
   */
  taking(id: string): Promise<Session | undefined> | undefined {
    const p = this.#pending.get(id);
    if (p === undefined) return undefined;
    for (const w of this.#waits.values()) if (w.id === id && w.mode === TAKE) return p;
    return undefined;
  }

  /**
   * When a hinted FETCH for `id` (this node named as its owner) is answered: once the take of it
   * under way here ended (its grant may be on its way: "none here" would be wrong), undefined to
   * answer now. Held only while the take asks plainly (no member as a named owner): plain asks
   * are answered without waiting for anyone's take, so it ends by itself. Once it asks members as
   * named owners (stale hints), the FETCHes held here are answered: two takes named by each
   * other's stale hints would each hold the other's ask until the fetch timeout.
   */
  holdFor(id: string): Promise<void> | undefined {
    let held = this.#holds.get(id);
    if (held !== undefined) return held.promise;
    let plain = false;
    for (const w of this.#waits.values()) if (w.id === id && w.mode === TAKE) plain = w.hinted.size === 0;
    if (!plain) return undefined;
    let release = () => {};
    const promise = new Promise<void>((resolve) => {
      release = resolve;
    });
    held = { promise, release };
    this.#holds.set(id, held);
    return promise;
  }

  /** Answers the FETCHes held for `id` now, or (`later`) once this turn's continuations ran. */
  #release(id: string, later = false): void {
    const held = this.#holds.get(id);
    if (held === undefined) return;
    this.#holds.delete(id);
    if (later) setImmediate(held.release);
    else held.release();
  }

  /**
   * FETCHED: taken only from a member asked, for the session asked; granted only in answer to a
   * take. A grant that comes after its fetch ended (timeout) is still taken (see {@link #lateGrant}).
   */
  onFetched(m: FetchedMsg, from: Member): void {
    const w = this.#waits.get(m[2]);
    if (w === undefined || !w.waiting.delete(from.id)) {
      const late = w === undefined && (m[4] === true ? this.#lateGrant(m, from) : this.#lateAnswer(m, from));
      if (!late) this.host.refuse(from, 'a fetch answer this node did not ask that member for');
      return;
    }
    if (m[3] === null) {
      // "Moved to": where the member saw the session go (asked next, see #nextRound).
      if (typeof m[4] === 'string' && m[4] !== this.host.localId) w.movedTo.add(m[4]);
    } else {
      if ((m[3] as unknown[])[0] !== w.id) this.host.refuse(from, 'a fetch answer for another session');
      else if (m[4] === true && w.mode !== TAKE)
        this.host.refuse(from, 'a grant in answer to a fetch that did not ask for the ownership');
      else {
        w.records.push([m[3], from]);
        if (m[4] === true) {
          // The owner's record has every change of its: the request goes on now; the other
          // answers merge when they come (#late), and a FETCH held for this take is answered.
          w.grantedBy = from;
          this.#settle(m[2], false);
          return;
        }
        // A copy that came here meanwhile by another path (the owner's changes to its fetcher, a
        // repair) may be taken over before the other answers are in: the owner, counting this
        // answer among the changes it sent, hands it over without a whole copy (handingOver), so
        // the copy must have it now (merged by stamps: applied again at the end, it changes nothing).
        else if (this.host.find(w.id) !== undefined) this.host.applyRecord(m[3], from, Date.now());
      }
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

  /**
   * The owner handed the session over after this node stopped waiting (it believes this node owns
   * it now): its record is merged (every change of the owner's is in it) and the session taken,
   * as a grant in time would have. Only from a member asked that had not answered, for that session.
   */
  #lateGrant(m: FetchedMsg, from: Member): boolean {
    const late = this.#late.get(m[2]);
    if (late === undefined || !late.take || !late.from.has(from.id) || (m[3] as unknown[])[0] !== late.id) return false;
    this.#late.delete(m[2]);
    this.host.applyRecord(m[3], from, Date.now());
    const s = this.host.find(late.id);
    this.host.counters.lateGrants++;
    if (s !== undefined) this.#take(s, from);
    return true;
  }

  #take(s: Session, from: Member): void {
    s.ownerId = this.host.localId;
    s.primary = true;
    this.host.granted(s, from);
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
    if (!timedOut && !this.#stopping && this.#nextRound(requestId, w)) return;
    this.#waits.delete(requestId);
    clearTimeout(w.timer);
    const now = Date.now();
    if (timedOut) this.host.counters.fetchTimeouts++;
    // A member asked to take that did not answer yet may still hand the session over: one that
    // owned it, or came to own it meanwhile (a hinted ask held until its own take ended, answered
    // after another member's grant ended this fetch). It then believes this node owns it: the
    // grant is taken whenever it comes (refused, neither would serve it as owner).
    const take = w.mode === TAKE;
    if (w.waiting.size > 0 && (timedOut || take)) {
      for (const [r, late] of this.#late) if (late.until < now || this.#late.size >= MAX_LATE) this.#late.delete(r);
      this.#late.set(requestId, { id: w.id, from: new Set(w.waiting), until: now + 2 * this.host.timeoutMs, take });
    }
    const me = this.host.localId;
    // Who serves the session: the member whose copy names itself. The merged copy's owner (that
    // of the highest version) may be stale: a holder no longer sent the changes can name this
    // very node (a former owner), which would then serve its fetched copy as owner without
    // asking anyone — a second owner, and lost writes.
    let claimed: string | undefined;
    let named: string | undefined;
    // A copy that came here by another path while the answers were awaited (the owner's changes
    // to a fetcher, a repair) and is named after a member other than this node, or that this node
    // took over since (a GRANT: primary): its owner is newer knowledge than the answers, which
    // were sent before. Made the owner again from an answer, this node would ask a member it
    // handed over to, or a former owner, and wait for or take over from the wrong one: a session
    // this node owns would be named after the member asking it (each waits for the other's
    // hand-over until ownershipTimeoutMs, then both take over: fenced, lost writes).
    const prior = this.host.find(w.id);
    const priorOwner = prior?.ownerId ?? '';
    const known = prior !== undefined && (prior.primary || (priorOwner !== me && priorOwner !== ''));
    for (const [record, from] of w.records) {
      this.host.applyRecord(record, from, now);
      const owner = (record as unknown[])[9];
      if (owner === from.id) claimed = from.id;
      else if (typeof owner === 'string' && owner !== '' && owner !== me) named ??= owner;
      named ??= from.id;
    }
    const s = this.host.find(w.id);
    if (s !== undefined && w.grantedBy !== undefined) {
      this.host.counters.fetchGrants++;
      this.#take(s, w.grantedBy);
    } else if (s !== undefined && !known && s.active <= 0 && s.ownerId !== claimed) {
      // Nobody claimed it but a member did not answer: that member may serve it, so it is asked
      // (ACQUIRE), not a holder whose old copy may name this node as owner and would grant it:
      // two owners, and this node serving a stale value.
      const owner = claimed ?? this.#silent(w) ?? (s.ownerId === me || s.ownerId === '' ? named : undefined);
      if (owner !== undefined) {
        s.ownerId = owner;
        s.primary = false;
      }
    } else if (s !== undefined && known && !prior.primary && s.active <= 0 && s.ownerId === me) {
      // An answer's old copy named this node, which does not serve it: the owner known before stays.
      s.ownerId = priorOwner;
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
