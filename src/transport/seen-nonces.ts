/**
 * The hello nonces seen within the replay window: a HELLO captured from the wire and sent again
 * carries a nonce already seen, and is refused even though its MAC and timestamp are valid.
 * Bounded in age (the replay window: older hellos are refused by their timestamp anyway) and in
 * size (the oldest entries go first; a replay that outlives its entry still cannot send a
 * record, since the record keys depend on the server's fresh nonce, and is closed by the
 * handshake timeout).
 */
export class SeenNonces {
  /** Nonce (latin1 string) → time seen; insertion order is time order. */
  readonly #seen = new Map<string, number>();

  constructor(
    private readonly maxAgeMs: number,
    private readonly maxEntries: number,
  ) {}

  get size(): number {
    return this.#seen.size;
  }

  /** Records `nonce`; true when it was already seen within the window (a replay). */
  check(nonce: Buffer, now: number): boolean {
    for (const [k, t] of this.#seen) {
      if (now - t <= this.maxAgeMs && this.#seen.size < this.maxEntries) break;
      this.#seen.delete(k);
    }
    const key = nonce.toString('latin1');
    if (this.#seen.has(key)) return true;
    this.#seen.set(key, now);
    return false;
  }
}
