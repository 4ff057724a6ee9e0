/**
 * Heartbeat sequence floors: per member id, the highest sequence accepted and when. A heartbeat at
 * or below its member's floor is a replay (or reordered); one implausibly far above it is refused
 * without moving the floor. A floor not moved for `ttlMs` is forgotten: with a key that is after
 * any heartbeat it covers would fail the timestamp check anyway, so forgetting costs no replay
 * protection; without a key, nothing stops forgery in the first place, and forgetting is what
 * bounds how long a forged floor can refuse a member's real heartbeats.
 */

/** Config minimum of membership.frequencyMs: no sender heartbeats faster (bar rare extra sends). */
const MIN_FREQUENCY_MS = 10;
/**
 * A sender's sequence starts at its start time in microseconds and grows by one a heartbeat (far
 * slower than its clock), so it never runs ahead of its clock × 1000. Clocks may disagree
 * (unauthenticated clusters have no clock rule): a day of slack before a sequence is absurd.
 */
const CLOCK_SLACK_MS = 86_400_000;

export type SequenceVerdict = 'new' | 'replay' | 'jump';

export class SequenceFloors {
  readonly #floors = new Map<string, { seq: bigint; at: number }>();

  /**
   * @param maxJump heartbeats a sender may be ahead of its floor (on top of what the time since
   *   the floor allows at the fastest frequency), e.g. five minutes' worth at our frequency.
   * @param ttlMs how long an unmoved floor is kept.
   */
  constructor(
    private readonly maxJump: bigint,
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  /** Judges heartbeat `seq` from `id`; a 'new' one becomes the floor. */
  check(id: string, seq: bigint, now: number): SequenceVerdict {
    if (seq > BigInt(now + CLOCK_SLACK_MS) * 1000n) return 'jump';
    const floor = this.#floors.get(id);
    if (floor !== undefined && now - floor.at <= this.ttlMs) {
      if (seq <= floor.seq) return 'replay';
      const allowed = this.maxJump + BigInt(Math.ceil((now - floor.at) / MIN_FREQUENCY_MS));
      if (seq - floor.seq > allowed) return 'jump';
      floor.seq = seq;
      floor.at = now;
      return 'new';
    }
    if (floor !== undefined) {
      floor.seq = seq;
      floor.at = now;
      return 'new';
    }
    if (this.#floors.size >= this.maxEntries) {
      this.prune(now);
      // Still full: only unauthenticated senders can invent that many ids, and without a key a
      // floor protects nothing; forgetting them keeps memory bounded and real members heard.
      if (this.#floors.size >= this.maxEntries) this.#floors.clear();
    }
    this.#floors.set(id, { seq, at: now });
    return 'new';
  }

  /** Drops floors older than the ttl. */
  prune(now: number): void {
    for (const [id, f] of this.#floors) if (now - f.at > this.ttlMs) this.#floors.delete(id);
  }

  get size(): number {
    return this.#floors.size;
  }
}
