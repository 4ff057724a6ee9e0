/**
 * Reusable buffers that batched writes copy small frames into. A socket.write() per frame costs
 * more than copying it (each write is a Writable bookkeeping entry and an iovec), and a fresh
 * Buffer.concat() per batch costs an allocation that the GC then has to collect; a slab is taken
 * for one write and comes back when that write has reached the kernel (its callback ran), never
 * earlier. At most MAX_FREE slabs wait here; when more are in flight, extra ones are allocated and
 * left to the GC.
 */

/** Bytes of one slab: a sealed record's header, its largest data and its tag fit in one. */
export const SLAB_BYTES = 64 * 1024 + 64;
/** Free slabs kept for reuse, process-wide (2 MiB). */
const MAX_FREE = 32;

const free: Buffer[] = [];

/** A slab for one write; give it back with {@link releaseSlab} once that write completed. */
export function takeSlab(): Buffer {
  return free.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES);
}

/** Returns a slab whose write completed (its bytes are in the kernel): it may be overwritten now. */
export function releaseSlab(slab: Buffer): void {
  if (free.length < MAX_FREE) free.push(slab);
}

/** Free slabs waiting (for tests). */
export function freeSlabs(): number {
  return free.length;
}
