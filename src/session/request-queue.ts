/**
 * sessions.serialize: the requests of one session run one at a time (PHP's and ASP.NET's session
 * lock), cluster-wide.
 * - On this node: a lock per session and a FIFO of the requests waiting for it. The lock is a flag
 *   on the session (no allocation while nobody waits); the queue is made on first contention and
 *   bounded (serializeQueueLimit; one more request is refused at once, counted).
 * - Across nodes: the ownership protocol (ownership.ts). A request that holds the lock begins
 *   using the session and takes it over from its owner if another node has it; that node hands it
 *   over once its own request ended. Before a request starts here, members already waiting for
 *   this node to hand the session over go first ({@link QueueHost.yieldTo}): fair hand-over, so a
 *   local queue does not starve a remote asker, and the rest of the local queue asks back.
 * - Every wait (the queue, the yield, the take-over) is bounded by serializeTimeoutMs from the
 *   request's arrival; a request past it is told (`'timeout'`, counted) and answered 503. All waits
 *   are equally long, so arrival order is deadline order: one timer for all of them.
 */
import { performance } from 'node:perf_hooks';
import type { Session } from './session.js';

/** How a wait ended: the request may go on, it waited too long, or its client went away. */
export type SerialOutcome = 'go' | 'timeout' | 'aborted';

/** Returned by {@link RequestQueue.enter} when the session's queue is full (counted). */
export const QUEUE_FULL = Symbol('clowder.serialize.full');

/** A request that runs under its session's lock (the HTTP layer's request objects). */
export interface SerialRequest {
  /**
   * The lock is now this request's (and the members waiting for a hand-over went first): begin
   * using `s`. Returns what is still to wait for before the application may run (the take-over
   * from another node), or undefined.
   */
  serialStart(s: Session): Promise<void> | undefined;
}

/** What the queue needs of the session manager. */
export interface QueueHost {
  /**
   * When members wait for this node to hand `s` over: a promise resolved once it did (they go
   * before this node's next request). undefined: nobody waits.
   */
  yieldTo(s: Session): Promise<void> | undefined;
}

/** The counters of serialization (in the manager's stats). */
export interface SerializeStats {
  /** Requests that waited for their session's lock (another request of it was running). */
  serializeWaits: number;
  /** Requests answered 503 because they waited longer than serializeTimeoutMs. */
  serializeTimeouts: number;
  /** Requests answered 503 at once because serializeQueueLimit requests already waited. */
  serializeRefused: number;
  /** Requests whose client went away while they waited. */
  serializeAborted: number;
  /** Total time requests waited for their turn (lock, yield and take-over), in ms. */
  serializeWaitMs: number;
}

/** One request's wait for its turn on a session. */
export class SerialWait {
  readonly promise: Promise<SerialOutcome>;
  #resolve!: (outcome: SerialOutcome) => void;
  /** {@link SerialRequest.serialStart} ran: the request holds the lock and began using the session. */
  started = false;
  /** Ended (go, timeout or aborted): later events change nothing. */
  settled = false;
  /** Holds the lock while members it yielded to get the session first. */
  yielding = false;

  constructor(
    readonly session: Session,
    readonly request: SerialRequest,
    /** performance.now() at arrival; the deadline is this plus the timeout. */
    readonly since: number,
    readonly deadline: number,
  ) {
    this.promise = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  /** Resolves the wait's promise (once: {@link RequestQueue} checks `settled` first). */
  resolve(outcome: SerialOutcome): void {
    this.#resolve(outcome);
  }
}

export class RequestQueue {
  /** Waits not settled, in arrival (= deadline) order. */
  readonly #waits = new Set<SerialWait>();
  #timer: NodeJS.Timeout | undefined;
  readonly #stats: SerializeStats = {
    serializeWaits: 0,
    serializeTimeouts: 0,
    serializeRefused: 0,
    serializeAborted: 0,
    serializeWaitMs: 0,
  };

  constructor(
    private readonly host: QueueHost,
    /** serializeTimeoutMs. */
    readonly timeoutMs: number,
    /** serializeQueueLimit. */
    readonly limit: number,
  ) {}

  /**
   * A serialized request on `s` arrives. undefined: it holds the lock and started with nothing
   * to wait for (the fast path: no allocation). QUEUE_FULL: refused (counted). Otherwise its wait:
   * its promise resolves `'go'` once it holds the lock, started and its take-over (if any) is
   * done, or `'timeout'` / `'aborted'` (then, if `started`, the caller ends its use of `s` and
   * calls {@link leave}).
   */
  enter(s: Session, request: SerialRequest): SerialWait | undefined | typeof QUEUE_FULL {
    if (!s.serialHeld) {
      const yielded = this.host.yieldTo(s);
      s.serialHeld = true;
      if (yielded === undefined) {
        const rest = request.serialStart(s);
        if (rest === undefined) return undefined;
        const w = this.#newWait(s, request);
        w.started = true;
        this.#afterStart(w, rest);
        return w;
      }
      this.#stats.serializeWaits++;
      const w = this.#newWait(s, request);
      this.#yield(w, yielded);
      return w;
    }
    const queue = (s.serialQueue ??= []);
    if (queue.length >= this.limit) {
      this.#stats.serializeRefused++;
      return QUEUE_FULL;
    }
    this.#stats.serializeWaits++;
    const w = this.#newWait(s, request);
    queue.push(w);
    return w;
  }

  /** The request holding `s`'s lock is done with it: the next one waiting here gets it. */
  leave(s: Session): void {
    if (!s.serialHeld) return;
    this.#next(s);
  }

  /** The client of a waiting request went away: it leaves the queue (or, if it holds the lock, the caller leaves). */
  abort(w: SerialWait): void {
    if (w.settled) return;
    this.#stats.serializeAborted++;
    this.#settle(w, 'aborted');
  }

  /** Counters (copied). */
  stats(): SerializeStats {
    return { ...this.#stats, serializeWaitMs: Math.round(this.#stats.serializeWaitMs) };
  }

  /** Waits in progress (tests: nothing is left behind). */
  get waiting(): number {
    return this.#waits.size;
  }

  /** Passes the lock of `s` to the next request waiting for it, or frees it. */
  #next(s: Session): void {
    const queue = s.serialQueue;
    const w = queue?.shift();
    if (queue !== undefined && queue.length === 0) s.serialQueue = undefined; // no queue kept when idle
    if (w === undefined) {
      s.serialHeld = false;
      return;
    }
    this.#start(w); // the lock stays held: it is w's now
  }

  /** `w` holds the lock: yield to waiting members if any, else start it. */
  #start(w: SerialWait): void {
    const s = w.session;
    if (w.settled || !s.valid) {
      // Gone (timed out, aborted) or the session ended meanwhile: the next one.
      if (!w.settled) this.#settle(w, 'go'); // goes on without the session (not started)
      this.#next(s);
      return;
    }
    const yielded = this.host.yieldTo(s);
    if (yielded !== undefined) {
      this.#yield(w, yielded);
      return;
    }
    w.started = true;
    const rest = w.request.serialStart(s);
    if (rest === undefined) this.#settle(w, 'go');
    else this.#afterStart(w, rest);
  }

  #yield(w: SerialWait, yielded: Promise<void>): void {
    w.yielding = true;
    const resume = () => {
      w.yielding = false;
      this.#start(w);
    };
    yielded.then(resume, resume);
  }

  #afterStart(w: SerialWait, rest: Promise<void>): void {
    const go = () => this.#settle(w, 'go');
    rest.then(go, go);
  }

  #newWait(s: Session, request: SerialRequest): SerialWait {
    const now = performance.now();
    const w = new SerialWait(s, request, now, now + this.timeoutMs);
    this.#waits.add(w);
    this.#arm();
    return w;
  }

  /** Ends `w` once: out of the timer's list and its session's queue; its promise resolves. */
  #settle(w: SerialWait, outcome: SerialOutcome): void {
    if (w.settled) return;
    w.settled = true;
    this.#waits.delete(w);
    if (this.#waits.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer); // nothing left to wait for: no timer keeps a stopping process alive
      this.#timer = undefined;
    }
    this.#stats.serializeWaitMs += performance.now() - w.since;
    if (!w.started && !w.yielding) {
      // Still in the queue (not holding the lock): it leaves it.
      const queue = w.session.serialQueue;
      const i = queue === undefined ? -1 : queue.indexOf(w);
      if (i >= 0) {
        queue!.splice(i, 1);
        if (queue!.length === 0) w.session.serialQueue = undefined;
      }
    }
    // A yielding wait keeps the lock until the hand-over ends; #start then passes it on.
    w.resolve(outcome);
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    const oldest = this.#waits.values().next();
    if (oldest.done) return;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, oldest.value.deadline - performance.now()));
  }

  #expire(): void {
    this.#timer = undefined;
    const now = performance.now();
    for (const w of this.#waits) {
      if (w.deadline > now) break;
      this.#stats.serializeTimeouts++;
      this.#settle(w, 'timeout');
    }
    this.#arm();
  }
}
