/**
 * Where a BackupManager fetch goes first, and where an ACQUIRE for a dropped copy is sent on: the
 * hints a node keeps of who served the sessions whose copies it dropped (bounded, oldest first
 * out), and the likely holders of a session (the node the cookie's route names and the node last
 * seen to serve it, each with its backups by placement). Asking only them first keeps a fetch to
 * one or two members in a large cluster; everyone is asked only when none of them serves it.
 */
import type { Member } from '../channel/types.js';
import type { Placement } from './placement.js';

/** Hints kept of where dropped copies' sessions went (ACQUIRE redirects, fetches); the oldest go first. */
export const MAX_MOVED_HINTS = 16_384;

export class FetchRouting {
  /**
   * Session id → the member that served it when this node dropped its copy (RELEASE, a read's
   * fetched copy): an ACQUIRE from a node whose copy still names this one is sent there.
   */
  readonly #movedTo = new Map<string, string>();

  /** The member last seen to serve `id` when this node dropped its copy, if any. */
  movedTo(id: string): string | undefined {
    return this.#movedTo.get(id);
  }

  /** This node dropped its copy of `id`, which `owner` serves (the oldest hint goes past the bound). */
  dropped(id: string, owner: string): void {
    this.#movedTo.delete(id);
    if (this.#movedTo.size >= MAX_MOVED_HINTS) this.#movedTo.delete(this.#movedTo.keys().next().value as string);
    this.#movedTo.set(id, owner);
  }

  /**
   * Who likely holds `id`: the member `routeOwner` (the node the cookie names: it served the
   * session last, for that client) and the member this node saw serve it when it dropped its copy
   * (a cookie the client did not update names an older owner), each with its `k` backups by
   * placement `p`. Undefined when neither is known.
   */
  likely(
    id: string,
    routeOwner: string | undefined,
    members: readonly Member[],
    p: Placement,
    k: number,
  ): readonly Member[] | undefined {
    const moved = this.#movedTo.get(id);
    if (routeOwner === undefined && moved === undefined) return undefined;
    const out: Member[] = [];
    for (const primary of [moved, routeOwner]) {
      if (primary === undefined || !p.has(primary)) continue;
      for (const holder of p.holders(id, primary, k)) {
        const m = members.find((x) => x.id === holder);
        if (m !== undefined && !out.includes(m)) out.push(m);
      }
    }
    return out;
  }
}
