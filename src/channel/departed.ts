/**
 * Members removed from a channel's view, remembered by id so that one added again is recognised
 * as the same process coming back (a pause, a healed partition) rather than a new member: a
 * restarted process has a new id, so only a member that was really away matches. Bounded: past
 * MAX_DEPARTED ids the oldest removals are forgotten (such a member then comes back as a plain
 * memberAdded, as before rejoins were tracked).
 */
const MAX_DEPARTED = 10_000;

export class DepartedMembers {
  /** Id → when it was removed; Map order is removal order (oldest first). */
  readonly #ids = new Map<string, number>();

  constructor(private readonly max = MAX_DEPARTED) {}

  /** `id` left the view. */
  gone(id: string, now = Date.now()): void {
    this.#ids.delete(id); // re-inserted last: the order stays the removal order
    this.#ids.set(id, now);
    if (this.#ids.size > this.max) this.#ids.delete(this.#ids.keys().next().value!);
  }

  /** `id` is in view again: true (and forgotten) if it had been removed before. */
  back(id: string): boolean {
    return this.#ids.delete(id);
  }

  get size(): number {
    return this.#ids.size;
  }
}
