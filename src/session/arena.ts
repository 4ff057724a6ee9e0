/**
 * Long-lived attribute bytes live here, not in Node's shared Buffer pool: a small Buffer from
 * the pool keeps its whole 8 KiB slab alive, together with the short-lived frames and messages
 * allocated next to it, which multiplied the memory of an idle session several times over.
 * Small encodings are packed into private 64 KiB slabs that hold only attribute bytes (a slab
 * lives while any of its values does); larger ones get their own allocation.
 */
const SLAB = 64 * 1024;
/** Values at least this large get their own allocation, freed as soon as the value is replaced. */
const SMALL = 512;
let slab = Buffer.allocUnsafeSlow(SLAB);
let used = 0;

/** `n` bytes of memory that holds only long-lived data (an encoder's `alloc`). */
export function allocKept(n: number): Buffer {
  if (n >= SMALL) return Buffer.allocUnsafeSlow(n);
  if (used + n > SLAB) {
    slab = Buffer.allocUnsafeSlow(SLAB);
    used = 0;
  }
  const out = slab.subarray(used, used + n);
  used += (n + 7) & ~7;
  return out;
}

/** A copy of `bytes` in memory that holds only long-lived data. */
export function keep(bytes: Buffer): Buffer {
  const out = allocKept(bytes.length);
  bytes.copy(out);
  return out;
}
