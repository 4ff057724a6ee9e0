/**
 * The joining side of a state transfer (the donor side is state-donor.ts): asks the oldest member
 * serving the context for every session, hands each chunk's records to the manager as they
 * arrive, falls back to the next oldest member when one fails, and on stateTransferTimeout starts
 * cold with a loud error or refuses to start (sessions.onStateTransferTimeout). Changes that
 * arrive meanwhile wait in {@link StateReceiver.queue} and are applied in order afterwards.
 * Also merges the sessions of a member found running only after this node was ready, or back after
 * a pause or a partition (see {@link StateReceiver.merge}).
 */
import type { Member } from '../channel/types.js';
import type { SessionConfig } from '../config/session-config.js';
import { ClusterError, ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { Msg } from './messages.js';
import type { ReplicationHub } from './replication-hub.js';

/** State-transfer progress and result. */
export interface StateTransferStats {
  /** `stopped`: the node was stopped while the transfer ran. */
  state: 'idle' | 'transferring' | 'done' | 'timed-out' | 'alone' | 'stopped';
  donor?: string;
  sessions: number;
  bytes: number;
  durationMs: number;
  chunks: number;
}

/** What the receiver needs of its session manager (the context is `config.name`). */
export interface StateReceiverHost {
  /** Checks and applies one session record (merging by stamps); returns the bytes of the values it carried. */
  applyRecord(r: unknown, from: Member, now: number): number;
  /** The donor's tombstones: ids invalidated there, which must not come back here. */
  applyTombstones(ids: unknown): void;
  /** Applies a live message that waited in the queue during the transfer. */
  apply(m: unknown[], from: Member): void;
  /** A state-transfer message this node did not ask that member for: counted (refusedSessionData). */
  refuse(from: Member, why: string): void;
  /** A malformed message: counted (malformed). */
  malformed(from: Member, why: string): void;
  /** A merge with `m` (found late, or back after a silence) completed: each side holds the other's sessions. */
  merged?(m: Member): void;
}

interface Transfer {
  donor: Member;
  /** The transfer a starting node waits for (else a merge with a member found late). */
  initial: boolean;
  done: (ok: boolean) => void;
}

export class StateReceiver {
  stats: StateTransferStats = { state: 'idle', sessions: 0, bytes: 0, durationMs: 0, chunks: 0 };
  /** Live messages held back during the initial transfer (undefined when none is running). */
  queue: [unknown[], Member][] | undefined;
  /** Transfers in progress by request id: the initial one, and merges with members found late. */
  readonly #transfers = new Map<string, Transfer>();
  /** Merges started with members found late or back after a silence (stats: lateMemberMerges). */
  merges = 0;
  #requestSeq = 0;
  #cancelled = false;

  constructor(
    private readonly host: StateReceiverHost,
    private readonly hub: ReplicationHub,
    private readonly config: SessionConfig,
    private readonly logger: Logger,
  ) {}

  /** Whether a transfer from member `id` is in progress. */
  transferringFrom(id: string): boolean {
    for (const t of this.#transfers.values()) if (t.donor.id === id) return true;
    return false;
  }

  /**
   * The node stops: every transfer in progress ends now (an initial one makes {@link run} reject
   * with ERR_CLOWDER_STOPPED instead of waiting for its donor or the timeout), and none starts.
   */
  cancel(): void {
    this.#cancelled = true;
    for (const t of [...this.#transfers.values()]) t.done(false);
  }

  /** A member left: a transfer from it has failed (the next oldest is asked). */
  memberRemoved(m: Member): void {
    for (const t of this.#transfers.values()) if (t.donor.id === m.id) t.done(false);
  }

  /**
   * The initial transfer: resolves when this node holds every session (or there was nobody to
   * ask, or the timeout passed and the config says to start cold); rejects when it must not start.
   */
  async run(): Promise<void> {
    const started = Date.now();
    const deadline = started + this.config.stateTransferTimeoutMs;
    const tried = new Set<string>();
    const context = this.config.name;
    this.queue = [];
    try {
      for (;;) {
        this.#checkCancelled(started);
        const donors = this.hub
          .membersFor(context)
          .filter((m) => !tried.has(m.id))
          .sort((a, b) => a.startTime - b.startTime || (a.id < b.id ? -1 : 1));
        const donor = donors[0];
        if (donor === undefined) {
          if (tried.size > 0) this.#failed(started);
          else {
            this.stats.state = 'alone';
            this.logger.info({}, 'no other member serves this context: nothing to transfer');
          }
          return;
        }
        tried.add(donor.id);
        const ok = await this.transferFrom(donor, deadline);
        this.#checkCancelled(started);
        if (ok) {
          this.stats.state = 'done';
          this.stats.durationMs = Date.now() - started;
          const { sessions, bytes, durationMs: ms } = this.stats;
          this.logger.info({ donor: donor.name, sessions, bytes, ms }, 'state transfer complete');
          return;
        }
        if (Date.now() >= deadline) {
          this.#failed(started);
          return;
        }
        this.logger.warn({ donor: donor.name }, 'state transfer from this member failed; asking the next oldest');
      }
    } finally {
      const queued = this.queue ?? [];
      this.queue = undefined;
      for (const [m, from] of queued) this.host.apply(m, from);
    }
  }

  #checkCancelled(started: number): void {
    if (!this.#cancelled) return;
    this.stats.state = 'stopped';
    this.stats.durationMs = Date.now() - started;
    throw new ClusterError(ErrorCode.STOPPED, `stopped during the state transfer of ${this.config.name}`);
  }

  #failed(started: number): void {
    this.stats.state = 'timed-out';
    this.stats.durationMs = Date.now() - started;
    const context = this.config.name;
    if (this.config.onStateTransferTimeout === 'fail') {
      throw new ClusterError(
        ErrorCode.SEND_TIMEOUT,
        `state transfer for ${context} did not complete within ${this.config.stateTransferTimeoutMs} ms (sessions.onStateTransferTimeout is "fail")`,
      );
    }
    this.logger.error(
      { received: this.stats.sessions, timeoutMs: this.config.stateTransferTimeoutMs },
      'STATE TRANSFER INCOMPLETE: starting with only the sessions received so far; users of the others will be logged out (set sessions.onStateTransferTimeout to "fail" to refuse to start instead)',
    );
  }

  /**
   * Merges the sessions of `m` in the background, by stamps (newer versions win, tombstones keep
   * invalidated sessions away, same-attribute conflicts are reported): a member that was running
   * before this node was ready but seen only later (`late`), or one back after a silence in which
   * changes may have been lost either way (`rejoined`: a pause, a healed partition). Chunked and
   * acknowledged like the initial transfer; one at a time per member. False when one is already
   * running with `m`, or `m` does not serve this context.
   */
  merge(m: Member, why: 'late' | 'rejoined'): boolean {
    if (this.#cancelled || this.transferringFrom(m.id)) return false;
    if (!this.hub.membersFor(this.config.name).some((x) => x.id === m.id)) return false;
    this.merges++;
    this.logger.info(
      { member: m.name, why },
      why === 'late'
        ? 'found a member that was running before this node was ready: merging its sessions'
        : 'a member is back after a silence: merging its sessions',
    );
    void this.transferFrom(m, Date.now() + this.config.stateTransferTimeoutMs, false).then((ok) => {
      if (ok) this.host.merged?.(m);
      else if (!this.#cancelled) this.logger.warn({ member: m.name, why }, 'merging the sessions of a member failed');
    });
    return true;
  }

  /** Asks `donor` for every session; true once its STATE_COMPLETE arrived before `deadline`. */
  transferFrom(donor: Member, deadline: number, initial = true): Promise<boolean> {
    if (this.#cancelled) return Promise.resolve(false);
    const requestId = `${this.hub.channel.local.id.slice(0, 8)}-${(++this.#requestSeq).toString(36)}`;
    const context = this.config.name;
    if (initial) {
      this.stats = { state: 'transferring', donor: donor.name, sessions: 0, bytes: 0, durationMs: 0, chunks: 0 };
      this.logger.info({ donor: donor.name }, 'asking for the sessions of this context');
    }
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => finish(false), Math.max(0, deadline - Date.now()));
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.#transfers.delete(requestId);
        resolve(ok);
      };
      this.#transfers.set(requestId, { donor, initial, done: finish });
      this.hub.channel
        .send(donor, [Msg.STATE_REQUEST, context, requestId], { options: 'use_ack' })
        .catch(() => finish(false));
    });
  }

  /**
   * STATE_CHUNK, STATE_COMPLETE or STATE_NONE from a donor. Only an answer to a transfer in
   * progress, from the member asked, is used; any other (late, or from another member) is refused
   * and counted.
   */
  onMessage(m: unknown[], from: Member): void {
    const t = typeof m[2] === 'string' ? this.#transfers.get(m[2]) : undefined;
    if (t === undefined || from.id !== t.donor.id) {
      this.host.refuse(from, 'a state-transfer message for no transfer this node asked that member for');
      return;
    }
    if (m[0] === Msg.STATE_NONE) {
      t.done(false);
      return;
    }
    if (m[0] === Msg.STATE_COMPLETE) {
      this.host.applyTombstones(m[4]);
      t.done(true);
      return;
    }
    const records: unknown = m[4];
    if (!Array.isArray(records)) {
      // The donor is broken or hostile: ask the next one.
      this.host.malformed(from, 'a state chunk without its list of records');
      t.done(false);
      return;
    }
    const now = Date.now();
    for (const r of records) {
      const bytes = this.host.applyRecord(r, from, now);
      if (t.initial) this.stats.bytes += bytes;
    }
    if (!t.initial) return;
    this.stats.chunks++;
    this.stats.sessions += records.length;
    if (this.stats.chunks % 20 === 0) {
      this.logger.info({ sessions: this.stats.sessions }, 'state transfer in progress');
    }
  }
}
