/**
 * Session ownership ("migrate"): one node at a time serves a session. A node about to serve a
 * session that another node owns asks it (ACQUIRE); the owner hands over once its own requests
 * on the session ended and every change went out on the same ordered connection as the GRANT, so
 * the new owner has applied them before it serves. A node that is not the owner redirects to the
 * one it believes is; one that is itself acquiring answers once it owns. With sticky balancing
 * the owner is always local and none of this runs.
 *
 * The wait for a hand-over is bounded (sessions.ownershipTimeoutMs). It ends at once when the
 * member asked is removed from the channel (crashed or left): its session is taken over, counted
 * (ownershipForced), with the latest changes this node applied. When the member asked is alive but
 * did not hand over in time (a long request), or the redirects pass 16 hops, the session is taken
 * over anyway and that member is fenced ({@link OwnershipHost.fence}): its later writes to the
 * session are refused on every node, counted, and its own copy reverts to the new owner's.
 *
 * Fairness (what sessions.serialize relies on): an owner queues the askers waiting for a hand-over
 * by the hop count their ACQUIRE carries (redirected ones first), and {@link Ownership.yieldTo}
 * lets them go before this node's next serialized request, so an asker waits for the owner's
 * current request, not for its queue.
 */
import type { Member } from '../channel/types.js';
import { newRequestId } from './ids.js';
import { acquireMsg, grantMsg, type SessionMsg } from './message-builders.js';
import { Refused, readAcquire, readGrant } from './message-readers.js';
import type { Session } from './session.js';

/** What the protocol needs from its session manager. */
export interface OwnershipHost {
  readonly localId: string;
  readonly contextName: string;
  /** How long to wait for a hand-over (sessions.ownershipTimeoutMs). */
  readonly timeoutMs: number;
  members(): Member[];
  session(id: string): Session | undefined;
  /**
   * A session this node does not hold (any more): the member it last knew to serve it, if any
   * (a BackupManager forgets the copies it is no longer a holder of). Undefined: nobody known.
   */
  movedTo?(id: string): string | undefined;
  /**
   * A take-over of session `id` under way here by another path than ACQUIRE (a BackupManager
   * fetch whose answer may hand it over): an ACQUIRE for it is answered once that ended.
   */
  takingOver?(id: string): Promise<unknown> | undefined;
  /**
   * Sends what `s` has not replicated yet (the owner's last changes before it hands over to
   * `to`), and whatever else `to` needs to serve `s` at its latest value (a BackupManager sends a
   * whole copy to a node that did not receive the changes).
   */
  flush(s: Session, to: Member): void;
  /** Sends asynchronously; a failure goes to `onError` (or is counted by the manager). */
  post(to: Member, message: SessionMsg, onError?: (err: Error) => void): void;
  count(counter: 'ownershipMoves' | 'ownershipTimeouts' | 'ownershipForced'): void;
  /**
   * `s` is taken over from `ownerId`, a live member that did not hand it over: tells every member
   * (the fenced owner too) that writes of `ownerId` made before this take-over are stale.
   */
  fence(s: Session, ownerId: string): void;
  /** Counts (and rate-limits the log of) a message refused from `from`. */
  refuse(counter: 'malformed' | 'malformedIds' | 'refusedVersion' | 'refusedGrant', from: Member, why: string): void;
}

interface Grant {
  session: Session;
  /** The member asked: the only one whose answer counts. */
  asked: string;
  /** The session id asked about (the session may be renamed while it waits). */
  id: string;
  /** performance.now() after which the asker stops waiting. */
  deadline: number;
  done: (answer: Answer) => void;
}

/** The member asked was removed from the channel while this node waited for its answer. */
const GONE = Symbol('gone');
/** An owner's id; '' = no answer in time; GONE = the member asked was removed. */
type Answer = string | typeof GONE;
/** Redirects followed before a session is taken over anyway. */
const MAX_HOPS = 16;
/**
 * A hand-over waiting on the owner, with how often its asker was already redirected (-1: this
 * node's own next serialized request, which goes after every member).
 */
type HandOverWaiter = (() => void) & { hops?: number };

/**
 * Queues a hand-over on `s`: askers redirected more often go first (they waited longest), FIFO
 * among equals. Without it, an asker sent on from a node that just handed over would arrive at
 * the new owner after the direct ask of the node that handed over, lose again, and so on until
 * the 16-hop limit forced a take-over of a session whose owner is alive and working.
 */
function addWaiter(s: Session, w: HandOverWaiter, hops: number): void {
  w.hops = hops;
  const list = (s.waiters ??= []) as HandOverWaiter[];
  let i = list.length;
  while (i > 0 && (list[i - 1]!.hops ?? 0) < hops) i--;
  list.splice(i, 0, w);
}

export class Ownership {
  /** Take-overs in progress, by session id (concurrent requests here share one). */
  readonly #acquiring = new Map<string, Promise<void>>();
  /**
   * Answers awaited for ACQUIRE, by request id (random: {@link newRequestId}). Every wait is
   * equally long, so insertion order is deadline order: one timer, armed for the oldest, expires
   * them all (none per acquire).
   */
  readonly #grants = new Map<number, Grant>();
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly host: OwnershipHost) {}

  /**
   * Before a request on this node uses `s`: undefined when this node owns it; otherwise a promise
   * that resolves once it does — granted by the owner, or taken when the owner is gone (or is
   * removed while this node waits) or did not answer within timeoutMs (availability before
   * strictness; counted, and a live owner is fenced).
   */
  acquire(s: Session): Promise<void> | undefined {
    if (this.#mine(s)) return undefined;
    let pending = this.#acquiring.get(s.id);
    if (pending === undefined) {
      const id = s.id;
      // A take-over by another path under way here (a BackupManager fetch of another request on
      // this node) may bring the ownership: asked of the owner meanwhile, the owner would hold
      // this ACQUIRE until its own fetch ended, which waits for this node's hand-over, which waits
      // for this request: a cycle until ownershipTimeoutMs.
      const taking = this.host.takingOver?.(id);
      pending = (taking === undefined ? this.#acquireFrom(s, s.ownerId, 0) : this.#afterTake(s, taking)).finally(() =>
        this.#acquiring.delete(id),
      );
      this.#acquiring.set(id, pending);
    }
    return pending;
  }

  /** Whether this node serves `s` without asking anyone: it owns it, or nobody does (it takes it). */
  #mine(s: Session): boolean {
    if (s.ownerId === '') s.ownerId = this.host.localId;
    return s.ownerId === this.host.localId;
  }

  /** After this node's take of `s` under way ended: asks the owner it found, unless the take brought `s`. */
  async #afterTake(s: Session, taking: Promise<unknown>): Promise<void> {
    await taking.catch(() => undefined);
    if (s.valid && !this.#mine(s)) return this.#acquireFrom(s, s.ownerId, 0);
  }

  async #acquireFrom(s: Session, ownerId: string, hops: number): Promise<void> {
    const host = this.host;
    const me = host.localId;
    const owner = host.members().find((m) => m.id === ownerId);
    if (owner === undefined) {
      host.count('ownershipForced'); // gone: its writes can no longer arrive
      this.#take(s);
      return;
    }
    if (hops > MAX_HOPS) {
      host.count('ownershipForced');
      this.#takeFrom(s, owner.id);
      return;
    }
    let requestId = newRequestId();
    while (this.#grants.has(requestId)) requestId = newRequestId();
    const answer = await new Promise<Answer>((resolve) => {
      const deadline = performance.now() + host.timeoutMs;
      this.#grants.set(requestId, { session: s, asked: owner.id, id: s.id, deadline, done: resolve });
      this.#arm();
      // hops: the owner serves askers redirected more often first (addWaiter).
      host.post(owner, acquireMsg(host.contextName, s.id, requestId, hops), () => this.#settle(requestId, ''));
    });
    host.count('ownershipMoves');
    if (s.ownerId === me || !s.valid) return; // granted (taken when the grant arrived)
    if (answer === GONE) {
      // Removed while we waited (crashed, left): nothing more will come from it; serve it here.
      host.count('ownershipForced');
      this.#take(s);
      return;
    }
    if (answer === '' || answer === me || answer === ownerId) {
      // No answer in time, or nobody knows better: serve it here (availability first), counted,
      // and fence the live owner, whose request may still be running and write.
      host.count(answer === '' ? 'ownershipTimeouts' : 'ownershipForced');
      this.#takeFrom(s, ownerId);
      return;
    }
    return this.#acquireFrom(s, answer, hops + 1); // it moved on: ask the new owner
  }

  /**
   * Session `id` became this node's by another path (a BackupManager fetch's grant, which may
   * come late) while ACQUIREs of this node for it are out: the requests waiting for them go on
   * now. The waits stay, so a GRANT that still comes is taken: its sender handed the session over
   * to this node (refused, neither would own it). Waiting instead, a request here could hold up
   * this node's hand-over to the very member its ACQUIRE waits for (a cycle).
   */
  ownedElsewhere(id: string): void {
    const me = this.host.localId;
    for (const g of this.#grants.values()) if (g.id === id) g.done(me);
  }

  /**
   * `memberId` was removed from the channel: every wait for its answer ends now (the session is
   * taken over, counted ownershipForced), not when the wait times out.
   */
  memberRemoved(memberId: string): void {
    for (const [requestId, g] of this.#grants) if (g.asked === memberId) this.#settle(requestId, GONE);
  }

  /** Ends the wait for `requestId` with `answer` (once). */
  #settle(requestId: number, answer: Answer): void {
    const g = this.#grants.get(requestId);
    if (g === undefined) return;
    this.#grants.delete(requestId);
    if (this.#grants.size === 0 && this.#timer !== undefined) {
      // Nothing left to wait for: no timer keeps a stopping process alive.
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    g.done(answer);
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    const oldest = this.#grants.values().next();
    if (oldest.done) return;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, oldest.value.deadline - performance.now()));
  }

  #expire(): void {
    this.#timer = undefined;
    const now = performance.now();
    for (const [requestId, g] of this.#grants) {
      if (g.deadline > now) break;
      this.#grants.delete(requestId);
      g.done('');
    }
    this.#arm();
  }

  #take(s: Session): void {
    s.ownerId = this.host.localId;
    s.primary = true;
  }

  /** Takes `s` over from `ownerId`, a live member that did not hand it over: fenced first. */
  #takeFrom(s: Session, ownerId: string): void {
    this.#take(s);
    if (ownerId !== this.host.localId && ownerId !== '') this.host.fence(s, ownerId);
  }

  /** Owner side of ACQUIRE: hand over now, after the requests here on it ended, or redirect. */
  onAcquire(raw: unknown[], from: Member): void {
    const m = readAcquire(raw);
    if (m instanceof Refused) {
      this.host.refuse(m.counter, from, m.why);
      return;
    }
    const id = m[2];
    const requestId = m[3];
    const hops = m[4] ?? 0; // older nodes send none
    const s = this.host.session(id);
    const me = this.host.localId;
    // About to own it ourselves: answer once we do. Checked first: while a request here waits
    // for the session, what this node believes about its owner is frozen and may be stale. Were
    // it to name the asker, granting "you own it already" would make two owners: the asker, and
    // this node once its own grant arrives.
    // The same for a fetch that may bring the session and its ownership: not holding it yet, this
    // node would otherwise grant "you own it already", and own it too once the fetch's grant came.
    const pending = this.#acquiring.get(id) ?? this.host.takingOver?.(id);
    if (pending !== undefined) {
      const again = () => this.onAcquire(raw, from);
      pending.then(again, again);
      return;
    }
    if (s === undefined) {
      // Not held here: granting would make a second owner when the session lives on elsewhere
      // (a BackupManager node whose copy was released); send the asker to the one it moved to.
      const to = this.host.movedTo?.(id);
      if (to !== undefined && to !== from.id && to !== me) {
        this.#answer(from, id, requestId, to, false);
        return;
      }
    }
    if (s === undefined || !s.valid || s.ownerId === '' || s.ownerId === from.id) {
      this.#answer(from, id, requestId, from.id, true);
      return;
    }
    if (s.ownerId !== me) {
      this.#answer(from, id, requestId, s.ownerId, false);
      return;
    }
    addWaiter(
      s,
      () => {
        if (s.valid && s.ownerId === me) {
          this.host.flush(s, from);
          s.ownerId = from.id;
          s.primary = false;
          this.#answer(from, id, requestId, from.id, true);
        } else if (s.valid) this.#answer(from, id, requestId, s.ownerId, false);
        else this.#answer(from, id, requestId, from.id, true);
      },
      hops,
    );
    if (s.active <= 0) this.handOver(s);
  }

  /**
   * sessions.serialize, before this node's next request on `s` starts: when members wait for this
   * node to hand `s` over, they go first (fair hand-over: a local queue never starves a remote
   * asker). Resolves after their hand-over; the request then takes the session back as any other
   * (acquire). undefined: nobody waits, go on. The hand-over runs when this node's requests on
   * `s` end, as always (the request yielding has not begun: it does not hold it up).
   */
  yieldTo(s: Session): Promise<void> | undefined {
    if (s.waiters === undefined || s.ownerId !== this.host.localId) return undefined;
    const yielded = new Promise<void>((resolve) => addWaiter(s, resolve, -1));
    // Nothing else would run it: no request here uses s and no change of it waits for the turn's end.
    if (s.active <= 0 && !s.queued) this.handOver(s);
    return yielded;
  }

  /**
   * Queues `run` as a hand-over of `s` (this node owns it) to a member that asked for it another
   * way (a BackupManager FETCH "take"): it runs once this node's requests on `s` ended, in the
   * order of the hand-over queue; `run` checks whether this node still owns `s` then.
   */
  whenFree(s: Session, run: () => void): void {
    addWaiter(s, run, 0);
    if (s.active <= 0) this.handOver(s);
  }

  /** Runs the hand-overs waiting for `s` (its requests on this node have ended). */
  handOver(s: Session): void {
    const waiters = s.waiters;
    if (waiters === undefined) return;
    s.waiters = undefined;
    for (const w of waiters) w();
  }

  /**
   * Requester side of GRANT: granted → this node owns it now; otherwise where to ask next. Only
   * an answer to an ACQUIRE still awaited, from the member asked, for the session asked about, is
   * taken; any other is refused and counted (refusedGrant; so is an answer that came after the
   * wait timed out).
   */
  onGrant(raw: unknown[], from: Member): void {
    const m = readGrant(raw);
    if (m instanceof Refused) {
      this.host.refuse(m.counter, from, m.why);
      return;
    }
    const requestId = m[3];
    const g = this.#grants.get(requestId);
    if (g === undefined || g.asked !== from.id || g.id !== m[2]) {
      this.host.refuse('refusedGrant', from, 'a grant for no ownership request this node sent that member');
      return;
    }
    // Take it now, not when the waiting request resumes: an ACQUIRE that follows this grant on the
    // same connection must already find this node the owner (or two nodes would own it).
    if (m[5]) this.#take(g.session);
    this.#settle(requestId, m[5] ? this.host.localId : m[4]);
  }

  /** `granted`: the asker owns it now; otherwise `ownerId` is where to ask next. */
  #answer(to: Member, id: string, requestId: number, ownerId: string, granted: boolean): void {
    this.host.post(to, grantMsg(this.host.contextName, id, requestId, ownerId, granted));
  }
}
