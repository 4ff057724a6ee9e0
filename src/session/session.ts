/**
 * A session as every node holds it. Attribute values are kept as the codec bytes they travel in
 * and decoded on first read (scalars set on this node: as the value, encoded when they travel);
 * each attribute carries a stamp (version, writer) so that changes from several nodes converge
 * (last writer wins per attribute, ties broken by writer id) and a late or duplicate change never
 * overwrites newer data.
 */
import {
  DEFAULT_MAX_STRING_BYTES,
  decode,
  encode,
  encodedEquals,
  isScalarEncoding,
  Nested,
} from '../codec/value-codec.js';
import { CodecError, ErrorCode } from '../core/errors.js';
import { allocKept, keep } from './arena.js';
import type { SerialWait } from './request-queue.js';

/** Values whose encoding is at least this large are not kept decoded between requests. */
const RELEASE_BYTES = 256;
/** Strings up to this length always encode within the codec's string limit (≤ 3 UTF-8 bytes per unit). */
const SAFE_STRING_UNITS = Math.floor(DEFAULT_MAX_STRING_BYTES / 3);

/**
 * Scalars that are always encodable. Set on this node, they are kept as the value only and
 * encoded when they travel: a node without peers never encodes them, and a flat string costs
 * no more memory than its encoding would.
 */
function isScalar(v: unknown): boolean {
  switch (typeof v) {
    case 'number':
    case 'boolean':
      return true;
    case 'string':
      return v.length <= SAFE_STRING_UNITS;
    default:
      return v === null;
  }
}

/** The encoding of `value` in long-lived memory; a CodecError names the attribute and the path. */
function encodeKept(name: string, value: unknown): Buffer {
  try {
    return encode(value, undefined, 0, allocKept);
  } catch (err) {
    if (err instanceof CodecError) {
      const where = err.path ? `${name}.${err.path}`.replace('.[', '[') : name;
      throw new CodecError(
        ErrorCode.CODEC_ENCODE,
        `session attribute "${name}" cannot be replicated: ${err.message.replace(/^cannot encode [^:]*: /, '')} (at ${where})`,
        where,
      );
    }
    throw err;
  }
}

/**
 * One attribute: its value (decoded lazily), its encoding, and the stamp of the write that set it.
 * A set attribute has its value, its bytes or both: `bytes` stays undefined for a scalar (set here
 * or received), kept as its value and encoded when it travels (see {@link attributeWire}).
 */
export class Attribute {
  value: unknown = undefined;
  decoded = false;
  /** Session version the write that set it had seen (its base): tells reordering from conflict. */
  b = 0;
  constructor(
    public bytes: Buffer | undefined,
    /** Session version of the write that set or removed it. */
    public v: number,
    /** Id of the node that wrote it. */
    public w: string,
    public removed = false,
  ) {}
}

/**
 * A set attribute as it travels in a message: its encoding, or — for a scalar kept as its value —
 * the value, which the message encoder writes in place as the same bytes (no intermediate Buffer).
 */
export function attributeWire(a: Attribute): Buffer | Nested {
  return a.bytes ?? new Nested(a.value);
}

/**
 * Size of a value in a message: exact with `exact` (what bounds a state-transfer chunk), else an
 * estimate for statistics on the request path (a string counts its UTF-16 units, not its UTF-8 bytes).
 */
export function wireSize(v: Uint8Array | Nested, exact = false): number {
  if (!(v instanceof Nested)) return v.length;
  const x = v.value;
  if (typeof x !== 'string') return 10;
  return (exact ? Buffer.byteLength(x, 'utf8') : x.length) + 7; // version, tags, lengths
}

/** Received scalars up to this size are decoded on arrival (see {@link receiveValue}). */
const EAGER_SCALAR_BYTES = 64 * 1024;

/** A value as it arrived from another node, checked and ready to store. */
export interface ReceivedValue {
  readonly bytes: Buffer;
  /** Decoded now (a scalar); otherwise `NOT_DECODED` and the bytes are kept. */
  readonly value: unknown;
}
const NOT_DECODED = Symbol('not decoded');

/**
 * Checks a value that arrived from another node, before anything is applied (all or nothing). A
 * scalar (string, number, boolean, null) is decoded now and will be kept as the value, like one
 * set here: cheaper than giving each one a long-lived buffer of its own (a short string decodes
 * faster than that allocation costs, and a flat string takes no more memory). Anything else stays
 * as its encoding, decoded on first read.
 * @throws when it is not bytes, or a scalar's bytes do not decode.
 */
export function receiveValue(b: unknown): ReceivedValue {
  if (!Buffer.isBuffer(b)) throw new Error('attribute value is not bytes');
  const scalar = b.length <= EAGER_SCALAR_BYTES && isScalarEncoding(b);
  return { bytes: b, value: scalar ? decode(b) : NOT_DECODED };
}

/**
 * The encoding of a decoded attribute's value if it differs from the one it was decoded from or
 * last stored (an object changed in place), else undefined. @throws what {@link encode} throws.
 */
function changedEncoding(a: Attribute): Buffer | undefined {
  const bytes = encode(a.value);
  return a.bytes !== undefined && encodedEquals(a.bytes, bytes) ? undefined : bytes;
}

/** Stores a {@link receiveValue} result as the attribute's value. */
export function storeReceived(a: Attribute, r: ReceivedValue): void {
  if (r.value !== NOT_DECODED) {
    a.value = r.value;
    a.decoded = true;
    a.bytes = undefined;
  } else {
    a.bytes = keep(r.bytes);
    a.decoded = false;
    a.value = undefined;
  }
}

/** What a session reports to its manager (listeners, dirty tracking). */
export interface SessionOwner {
  /** Called after a local attribute change, for listeners. */
  attributeChanged(
    session: Session,
    name: string,
    kind: 'added' | 'replaced' | 'removed',
    value: unknown,
    old: unknown,
  ): void;
  /** Local invalidation; in synchronous mode the promise resolves once every node dropped it. */
  invalidate(session: Session): Promise<void> | undefined;
}

/** True when `a` (version, writer) is newer than `b`. */
export function newer(av: number, aw: string, bv: number, bw: string): boolean {
  return av > bv || (av === bv && aw > bw);
}

export class Session {
  readonly attributes = new Map<string, Attribute>();
  /** Names changed locally since the last replication. */
  dirty: Set<string> | undefined;
  /** Names whose object value was handed to application code, which may mutate it in place. */
  handedOut: Set<string> | undefined;
  /** Requests on this node currently using the session. */
  active = 0;
  /** Highest version seen (Lamport clock of this session). */
  version = 0;
  /** Whether this node served the last request (Tomcat's primary flag): the primary expires it cluster-wide. */
  primary = false;
  /** Id of the node that owns the session (serves its requests); '' = unknown. */
  ownerId = '';
  /** Nodes waiting for this node to hand the session over once its requests here are done. */
  waiters: (() => void)[] | undefined;
  /** sessions.serialize: a request of this node holds the session's lock (request-queue.ts). */
  serialHeld = false;
  /** The requests of this node waiting for that lock, in arrival order (made on first contention). */
  serialQueue: SerialWait[] | undefined;
  /** Not yet announced to the other nodes. */
  announced = false;
  /** maxInactiveInterval changed locally since the last replication. */
  maxInactiveDirty = false;
  valid = true;
  isNew = true;
  /** When this node last told the others about an access without change. */
  accessReplicatedAt = 0;
  /** Its changes wait for the end of this event-loop turn (DeltaManager.endTurn). */
  queued = false;
  /**
   * A forced take-over fenced this member (owner) at this version: its writes with a lower base
   * are stale (ownership.ts, DeltaManager #onTaken).
   */
  fence: { readonly owner: string; readonly version: number } | undefined;
  /**
   * On the fenced owner, while its requests on the session still run: reverts its copy to the new
   * owner's once the last one ends (its changes are dropped, counted).
   */
  revert: (() => void) | undefined;
  /** Version before the first change here after the latest removal of members (forks.ts), and that batch. */
  fork = 0;
  forkEpoch = 0;

  constructor(
    public id: string,
    readonly creationTime: number,
    public lastAccessedTime: number,
    /** Seconds; 0 or less = never expires. */
    public maxInactiveInterval: number,
    private readonly owner: SessionOwner,
  ) {}

  /** The value of `name` (decoded on first read), or undefined. */
  getAttribute(name: string): unknown {
    const a = this.attributes.get(name);
    if (a === undefined || a.removed) return undefined;
    if (!a.decoded) {
      a.value = decode(a.bytes!);
      a.decoded = true;
    }
    const v = a.value;
    if (v !== null && typeof v === 'object') (this.handedOut ??= new Set()).add(name);
    return v;
  }

  /**
   * Sets `name`. A value that is not a scalar is encoded now, so one that cannot be replicated
   * (a function, a class instance, a cycle) fails here, naming the attribute. `undefined` removes it.
   */
  setAttribute(name: string, value: unknown): void {
    if (value === undefined) {
      this.removeAttribute(name);
      return;
    }
    this.#checkValid();
    const bytes = isScalar(value) ? undefined : encodeKept(name, value);
    const a = this.attributes.get(name);
    const old = a === undefined || a.removed ? undefined : a.decoded ? a.value : undefined;
    const existed = a !== undefined && !a.removed;
    let attr = a;
    if (attr === undefined) {
      attr = new Attribute(bytes, 0, '');
      this.attributes.set(name, attr);
    } else {
      attr.bytes = bytes;
      attr.removed = false;
    }
    attr.value = value;
    attr.decoded = true;
    (this.dirty ??= new Set()).add(name);
    if (value !== null && typeof value === 'object') (this.handedOut ??= new Set()).add(name);
    this.owner.attributeChanged(this, name, existed ? 'replaced' : 'added', value, old);
  }

  /** Removes `name`. */
  removeAttribute(name: string): void {
    this.#checkValid();
    const a = this.attributes.get(name);
    if (a === undefined || a.removed) return;
    const old = a.decoded ? a.value : undefined;
    a.removed = true;
    a.bytes = undefined;
    a.value = undefined;
    a.decoded = false;
    (this.dirty ??= new Set()).add(name);
    this.handedOut?.delete(name);
    this.owner.attributeChanged(this, name, 'removed', undefined, old);
  }

  /** Names of the attributes that are set. */
  attributeNames(): string[] {
    const out: string[] = [];
    for (const [name, a] of this.attributes) if (!a.removed) out.push(name);
    return out;
  }

  hasAttribute(name: string): boolean {
    const a = this.attributes.get(name);
    return a !== undefined && !a.removed;
  }

  /** Changes the idle timeout (seconds) of this session; replicated. */
  setMaxInactiveInterval(seconds: number): void {
    if (!Number.isInteger(seconds)) throw new TypeError('maxInactiveInterval must be an integer number of seconds');
    this.maxInactiveInterval = seconds;
    this.maxInactiveDirty = true;
  }

  /** Invalidates the session on every node (the promise: synchronous mode, once all dropped it). */
  invalidate(): Promise<void> | undefined {
    this.#checkValid();
    return this.owner.invalidate(this);
  }

  /**
   * Finds attributes changed in place (e.g. `cart.items.push(x)`) by re-encoding every object
   * value handed out and comparing with its last encoding. Returns encoding errors by name.
   */
  detectInPlaceChanges(): [string, Error][] | undefined {
    const handed = this.handedOut;
    if (handed === undefined) return undefined;
    let errors: [string, Error][] | undefined;
    for (const name of handed) {
      const a = this.attributes.get(name);
      if (a === undefined || a.removed || !a.decoded) continue;
      let changed: Buffer | undefined;
      try {
        changed = changedEncoding(a);
      } catch (err) {
        (errors ??= []).push([name, err as Error]);
        continue;
      }
      if (changed !== undefined) {
        a.bytes = keep(changed);
        (this.dirty ??= new Set()).add(name);
      }
    }
    if (this.active <= 0) this.handedOut = undefined;
    return errors;
  }

  /**
   * For requests that may only read (sessions.readOnlyFilter): finds object values changed in
   * place, as {@link detectInPlaceChanges} does, and drops them instead of replicating them, so the
   * next read decodes the last replicated encoding again and this node's copy never drifts from
   * the owner's. Call once no request uses the session. Returns the names dropped.
   */
  discardInPlaceChanges(): string[] | undefined {
    const handed = this.handedOut;
    if (handed === undefined) return undefined;
    this.handedOut = undefined;
    let dropped: string[] | undefined;
    for (const name of handed) {
      const a = this.attributes.get(name);
      if (a === undefined || a.removed || !a.decoded || a.bytes === undefined) continue;
      let changed: boolean;
      try {
        changed = changedEncoding(a) !== undefined;
      } catch {
        changed = true; // changed into something unencodable: certainly changed
      }
      if (!changed) continue;
      a.decoded = false;
      a.value = undefined;
      (dropped ??= []).push(name);
    }
    return dropped;
  }

  /**
   * Between requests, large values are kept only as their encoding (decoded again on the next
   * read): an idle session then costs about its encoded size, on every node alike.
   */
  releaseDecoded(): void {
    if (this.active > 0) return;
    for (const a of this.attributes.values()) {
      if (a.decoded && a.bytes !== undefined && a.bytes.length >= RELEASE_BYTES) {
        a.decoded = false;
        a.value = undefined;
      }
    }
  }

  /** Idle milliseconds at `now`. */
  idleMs(now: number): number {
    return now - this.lastAccessedTime;
  }

  #checkValid(): void {
    if (!this.valid) throw new Error(`session ${this.id.slice(0, 8)}… is invalidated`);
  }
}
