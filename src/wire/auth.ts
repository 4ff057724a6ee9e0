/**
 * Cluster-key cryptography. One shared secret (the `clusterKey`; during a rotation each key of a
 * list, the first one sending) yields, by HKDF-SHA256:
 * - a hello key: HMAC-SHA256 over each HELLO / HELLO_ACK (the ACK's MAC also covers the client's
 *   fresh nonce, so a recorded answer cannot be replayed);
 * - a heartbeat key: HMAC over each multicast heartbeat (with a sequence number and timestamp
 *   window against replay);
 * - per-connection record keys, derived from both hello nonces: every later frame travels inside
 *   SEALED records, AES-256-GCM with a per-direction counter as nonce, so a record cannot be
 *   replayed, reordered, dropped or injected without the receiver noticing. With `encrypt: false`
 *   the record is authenticated only (the data is GCM's additional authenticated data).
 * A record or hello that fails verification is dropped before any byte of it is parsed.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  type DecipherGCM,
  hkdfSync,
  scrypt,
  timingSafeEqual,
} from 'node:crypto';
import { type GcmContext, type GcmEngine, gcmEngine, nativeGcm } from './native-gcm.js';

export const MAC_BYTES = 32;
export const HEARTBEAT_MAC_BYTES = 16;
export const TAG_BYTES = 16;
export const NONCE_BYTES = 16;

const SALT = Buffer.from('clowder cluster key v1');

function derive(secret: Buffer, info: string, salt: Buffer = SALT): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, info, 32));
}

/** The keys derived from one cluster key. */
interface KeySet {
  readonly master: Buffer;
  readonly hello: Buffer;
  readonly heartbeat: Buffer;
}

function keySet(secret: string | Uint8Array): KeySet {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  const master = Buffer.from(hkdfSync('sha256', bytes, SALT, 'master', 32));
  return { master, hello: derive(master, 'hello'), heartbeat: derive(master, 'heartbeat') };
}

/**
 * Keys derived from the cluster key, or from each key of a rotation list: key 0 signs what this
 * node sends (hellos, heartbeats) and every key is accepted on receipt. A connection's record
 * keys come from the key its hello was made with, which the receiver learns by trying each key
 * on the hello's MAC (at most MAX_CLUSTER_KEYS HMACs per hello).
 */
export class ClusterKeys {
  #sets: readonly KeySet[];
  /** Hellos and heartbeats accepted, per key index. */
  accepted: number[];

  /**
   * @param secrets - the key, or the keys in order (the first sends). A string is used through
   *   HKDF as it is; bytes are a key already stretched (see {@link stretchPassphrase}).
   */
  constructor(secrets: string | Uint8Array | readonly (string | Uint8Array)[]) {
    const list = typeof secrets === 'string' || secrets instanceof Uint8Array ? [secrets] : secrets;
    if (list.length === 0) throw new Error('ClusterKeys needs at least one key');
    this.#sets = list.map(keySet);
    this.accepted = list.map(() => 0);
  }

  /**
   * Replaces the keys in place (a rotation without restart): every hello and heartbeat from now on
   * is signed and checked with the new list; connections already open keep their record keys.
   */
  replace(secrets: readonly (string | Uint8Array)[]): void {
    if (secrets.length === 0) throw new Error('ClusterKeys needs at least one key');
    this.#sets = secrets.map(keySet);
    this.accepted = secrets.map(() => 0);
  }

  /** How many keys are accepted. */
  get size(): number {
    return this.#sets.length;
  }

  /** HMAC-SHA256 of the concatenated parts under the hello key of key `index` (default: the sending key). */
  helloMac(...parts: Uint8Array[]): Buffer {
    return this.helloMacWith(0, ...parts);
  }

  helloMacWith(index: number, ...parts: Uint8Array[]): Buffer {
    const h = createHmac('sha256', this.#sets[index]!.hello);
    for (const p of parts) h.update(p);
    return h.digest();
  }

  /**
   * The index of the key under which `mac` is the hello MAC of `parts`, or -1. With `only`, just
   * that key is tried (the client checking the answer to its own hello).
   */
  matchHello(mac: Uint8Array, parts: readonly Uint8Array[], only?: number): number {
    const from = only ?? 0;
    const to = only === undefined ? this.#sets.length : Math.min(only + 1, this.#sets.length);
    for (let i = from; i < to; i++) {
      if (macEquals(this.helloMacWith(i, ...parts), mac)) {
        this.accepted[i]!++;
        return i;
      }
    }
    return -1;
  }

  /** 16-byte HMAC of a heartbeat under the heartbeat key of the sending key. */
  heartbeatMac(data: Uint8Array, index = 0): Buffer {
    return createHmac('sha256', this.#sets[index]!.heartbeat).update(data).digest().subarray(0, HEARTBEAT_MAC_BYTES);
  }

  /** The index of the key under which `mac` is the heartbeat MAC of `data`, or -1. */
  matchHeartbeat(data: Uint8Array, mac: Uint8Array): number {
    for (let i = 0; i < this.#sets.length; i++) {
      if (macEquals(this.heartbeatMac(data, i), mac)) {
        this.accepted[i]!++;
        return i;
      }
    }
    return -1;
  }

  /** Record keys of one connection, made with key `index`: client-to-server and server-to-client. */
  recordKeys(clientNonce: Uint8Array, serverNonce: Uint8Array, index = 0): { c2s: Buffer; s2c: Buffer } {
    const salt = Buffer.concat([clientNonce, serverNonce]);
    const master = this.#sets[index]!.master;
    return { c2s: derive(master, 'record c2s', salt), s2c: derive(master, 'record s2c', salt) };
  }
}

/** scrypt cost of {@link stretchPassphrase}: N = 2^15, r = 8, p = 1 (32 MiB, ~0.1 s once per key and process). */
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
const SCRYPT_SALT = Buffer.from('clowder cluster key v1 scrypt');
const stretched = new Map<string, Promise<Buffer>>();

/**
 * Stretches a passphrase-like cluster key with scrypt (a fixed salt: every node must derive the
 * same bytes). Asynchronous (libuv's thread pool) and done once per key and process.
 */
export function stretchPassphrase(key: string): Promise<Buffer> {
  let p = stretched.get(key);
  if (p === undefined) {
    p = new Promise<Buffer>((resolve, reject) =>
      scrypt(key, SCRYPT_SALT, 32, SCRYPT, (err, out) => (err ? reject(err) : resolve(out))),
    );
    if (stretched.size >= 16) stretched.clear();
    stretched.set(key, p);
    p.catch(() => stretched.delete(key));
  }
  return p;
}

/** Constant-time comparison of two MACs. */
export function macEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Writes record number `counter` as a GCM nonce: a 48-bit counter, more records than any connection carries. */
function setNonce(nonce: Buffer, counter: number): Buffer {
  nonce.writeUIntBE(counter, 6, 6);
  return nonce;
}

function nativeContext(engine: GcmEngine, key: Buffer, decrypt: boolean): GcmContext | undefined {
  if (engine === 'node:crypto') return undefined;
  if (nativeGcm === undefined) throw new Error('the native AES-GCM module is not built (npm run build:native)');
  return nativeGcm.create(key, decrypt);
}

/**
 * Seals outgoing records of one direction of one connection. With the native module (see
 * native-gcm.ts) one cipher context serves every record of the connection; with node:crypto each
 * record sets up its own. The records are the same either way.
 */
export class RecordSealer {
  #counter = 0;
  readonly #nonce = Buffer.alloc(12);
  readonly #ctx: GcmContext | undefined;

  /** @param engine - who seals: the native module (the default when it is built) or node:crypto */
  constructor(
    private readonly key: Buffer,
    private readonly encrypt: boolean,
    readonly engine: GcmEngine = gcmEngine,
  ) {
    this.#ctx = nativeContext(engine, key, false);
  }

  /**
   * Seals the plaintext `parts` (consecutive bytes of the stream) as one record and returns what
   * follows the record header on the wire: the data, then the tag. `aad` is the record's header,
   * so its length and type are authenticated too. Authenticate-only mode returns the parts
   * themselves (for large parts, which are not worth copying; see {@link sealInPlace}).
   */
  seal(parts: readonly Buffer[], aad: Buffer): Buffer[] {
    const nonce = setNonce(this.#nonce, this.#counter++);
    const ctx = this.#ctx;
    if (ctx !== undefined) {
      const gcm = nativeGcm!;
      gcm.begin(ctx, nonce, aad, 0, aad.length);
      if (this.encrypt) {
        let size = 0;
        for (const p of parts) size += p.length;
        const out = Buffer.allocUnsafe(size + TAG_BYTES);
        let at = 0;
        for (const p of parts) {
          gcm.update(ctx, p, 0, p.length, out, at);
          at += p.length;
        }
        gcm.finish(ctx, out, size);
        return [out];
      }
      for (const p of parts) gcm.update(ctx, p, 0, p.length, null, 0);
      const tag = Buffer.allocUnsafe(TAG_BYTES);
      gcm.finish(ctx, tag, 0);
      return [...parts, tag];
    }
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(aad);
    const out: Buffer[] = [];
    if (this.encrypt) {
      for (const p of parts) out.push(cipher.update(p));
    } else {
      for (const p of parts) {
        cipher.setAAD(p);
        out.push(p);
      }
    }
    cipher.final();
    out.push(cipher.getAuthTag());
    return out;
  }

  /**
   * Seals the record laid out in `buf` — its header in [0, dataStart), its data up to `end` — where
   * it lies, and writes the tag at `end` (buf must have TAG_BYTES more). Encrypting replaces the
   * data by its ciphertext; authenticating only hashes header and data as one stream of additional
   * data. Either way the record is the one {@link seal} makes of the same bytes.
   */
  sealInPlace(buf: Buffer, dataStart: number, end: number): void {
    const nonce = setNonce(this.#nonce, this.#counter++);
    const aadEnd = this.encrypt ? dataStart : end;
    const ctx = this.#ctx;
    if (ctx !== undefined) {
      const gcm = nativeGcm!;
      gcm.begin(ctx, nonce, buf, 0, aadEnd);
      if (this.encrypt) gcm.update(ctx, buf, dataStart, end - dataStart, buf, dataStart);
      gcm.finish(ctx, buf, end);
      return;
    }
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(buf.subarray(0, aadEnd));
    if (this.encrypt) cipher.update(buf.subarray(dataStart, end)).copy(buf, dataStart);
    cipher.final();
    buf.set(cipher.getAuthTag(), end);
  }
}

/**
 * Opens incoming records of one direction of one connection, in order. A record can be opened
 * whole ({@link open}) or streamed as its bytes arrive ({@link begin}, {@link update}, {@link end}),
 * which spares the receiver from first gathering the record into one buffer; either way nothing
 * of it may be used before the tag verified.
 */
export class RecordOpener {
  #counter = 0;
  readonly #nonce = Buffer.alloc(12);
  readonly #ctx: GcmContext | undefined;
  #decipher: DecipherGCM | undefined;
  #open = false;

  /** @param engine - who opens: the native module (the default when it is built) or node:crypto */
  constructor(
    private readonly key: Buffer,
    private readonly encrypt: boolean,
    readonly engine: GcmEngine = gcmEngine,
  ) {
    this.#ctx = nativeContext(engine, key, true);
  }

  /** Starts the next record; `aad` is its header. */
  begin(aad: Uint8Array): void {
    const nonce = setNonce(this.#nonce, this.#counter++);
    this.#open = true;
    if (this.#ctx !== undefined) {
      nativeGcm!.begin(this.#ctx, nonce, aad, 0, aad.length);
      return;
    }
    const decipher = createDecipheriv('aes-256-gcm', this.key, nonce);
    decipher.setAAD(aad);
    this.#decipher = decipher;
  }

  /**
   * The next bytes of the record's data (without the tag). Returns their plaintext — untrusted
   * until {@link end} returned true. Authenticating only, that is `data` itself; decrypting with
   * the native module, `data` is decrypted in place (its bytes are overwritten) and returned.
   */
  update(data: Buffer): Buffer {
    if (!this.#open) throw new Error('RecordOpener.update() outside a record');
    const ctx = this.#ctx;
    if (ctx !== undefined) {
      nativeGcm!.update(ctx, data, 0, data.length, this.encrypt ? data : null, 0);
      return data;
    }
    const decipher = this.#decipher!;
    if (this.encrypt) return decipher.update(data);
    decipher.setAAD(data);
    return data;
  }

  /** The record's tag: true when everything since {@link begin} is authentic. */
  end(tag: Uint8Array): boolean {
    if (!this.#open) return false;
    this.#open = false;
    if (this.#ctx !== undefined) return nativeGcm!.finish(this.#ctx, tag, 0);
    const decipher = this.#decipher!;
    this.#decipher = undefined;
    try {
      decipher.setAuthTag(tag);
      decipher.final();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Returns the whole record's plaintext, or null when the record fails authentication (with the
   * native module the plaintext is `body`'s own bytes, decrypted in place).
   */
  open(body: Buffer, aad: Buffer): Buffer | null {
    if (body.length < TAG_BYTES) return null;
    this.begin(aad);
    const plain = this.update(body.subarray(0, body.length - TAG_BYTES));
    return this.end(body.subarray(body.length - TAG_BYTES)) ? plain : null;
  }
}
