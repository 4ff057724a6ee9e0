/**
 * Cluster-key cryptography. One shared secret (the `clusterKey`) yields, by HKDF-SHA256:
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
import { createCipheriv, createDecipheriv, createHmac, type DecipherGCM, hkdfSync, timingSafeEqual } from 'node:crypto';

export const MAC_BYTES = 32;
export const HEARTBEAT_MAC_BYTES = 16;
export const TAG_BYTES = 16;
export const NONCE_BYTES = 16;

const SALT = Buffer.from('clowder cluster key v1');

function derive(secret: Buffer, info: string, salt: Buffer = SALT): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, info, 32));
}

/** Keys derived from the shared cluster key. */
export class ClusterKeys {
  readonly #master: Buffer;
  readonly #hello: Buffer;
  readonly #heartbeat: Buffer;

  constructor(clusterKey: string) {
    this.#master = Buffer.from(hkdfSync('sha256', Buffer.from(clusterKey, 'utf8'), SALT, 'master', 32));
    this.#hello = derive(this.#master, 'hello');
    this.#heartbeat = derive(this.#master, 'heartbeat');
  }

  /** HMAC-SHA256 of the concatenated parts under the hello key. */
  helloMac(...parts: Uint8Array[]): Buffer {
    const h = createHmac('sha256', this.#hello);
    for (const p of parts) h.update(p);
    return h.digest();
  }

  /** 16-byte HMAC of a heartbeat under the heartbeat key. */
  heartbeatMac(data: Uint8Array): Buffer {
    return createHmac('sha256', this.#heartbeat).update(data).digest().subarray(0, HEARTBEAT_MAC_BYTES);
  }

  /** Record keys of one connection: client-to-server and server-to-client. */
  recordKeys(clientNonce: Uint8Array, serverNonce: Uint8Array): { c2s: Buffer; s2c: Buffer } {
    const salt = Buffer.concat([clientNonce, serverNonce]);
    return { c2s: derive(this.#master, 'record c2s', salt), s2c: derive(this.#master, 'record s2c', salt) };
  }
}

/** Constant-time comparison of two MACs. */
export function macEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function counterIv(counter: number): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeUIntBE(counter, 6, 6); // 48-bit counter: more records than any connection will ever carry
  return iv;
}

/** Seals outgoing records of one direction of one connection. */
export class RecordSealer {
  #counter = 0;
  constructor(
    private readonly key: Buffer,
    private readonly encrypt: boolean,
  ) {}

  /** Whether records are encrypted (else authenticated only). */
  get encrypting(): boolean {
    return this.encrypt;
  }

  /**
   * Seals the plaintext `parts` (consecutive bytes of the stream) as one record and returns what
   * follows the record header on the wire: the data, then the tag. `aad` is the record's header,
   * so its length and type are authenticated too. Authenticate-only mode returns the parts
   * themselves (for large parts, which are not worth copying; see {@link macInPlace}).
   */
  seal(parts: readonly Buffer[], aad: Buffer): Buffer[] {
    const cipher = createCipheriv('aes-256-gcm', this.key, counterIv(this.#counter++));
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
   * Authenticate-only: seals the record laid out in `buf` — its header, then its data, ending at
   * `end` — by writing the tag at `end` (buf must have TAG_BYTES more). One native call hashes
   * header and data together: the same tag as {@link seal} (GCM's additional data is one stream).
   */
  macInPlace(buf: Buffer, end: number): void {
    if (this.encrypt) throw new Error('macInPlace() is for authenticate-only records');
    const cipher = createCipheriv('aes-256-gcm', this.key, counterIv(this.#counter++));
    cipher.setAAD(buf.subarray(0, end));
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
  #decipher: DecipherGCM | undefined;
  constructor(
    private readonly key: Buffer,
    private readonly encrypt: boolean,
  ) {}

  /** Starts the next record; `aad` is its header. */
  begin(aad: Uint8Array): void {
    const decipher = createDecipheriv('aes-256-gcm', this.key, counterIv(this.#counter++));
    decipher.setAAD(aad);
    this.#decipher = decipher;
  }

  /**
   * The next bytes of the record's data (without the tag). Returns their plaintext (the same view
   * when authenticating only) — untrusted until {@link end} returned true.
   */
  update(data: Buffer): Buffer {
    const decipher = this.#decipher;
    if (decipher === undefined) throw new Error('RecordOpener.update() outside a record');
    if (this.encrypt) return decipher.update(data);
    decipher.setAAD(data);
    return data;
  }

  /** The record's tag: true when everything since {@link begin} is authentic. */
  end(tag: Uint8Array): boolean {
    const decipher = this.#decipher;
    if (decipher === undefined) return false;
    this.#decipher = undefined;
    try {
      decipher.setAuthTag(tag);
      decipher.final();
      return true;
    } catch {
      return false;
    }
  }

  /** Returns the whole record's plaintext, or null when the record fails authentication. */
  open(body: Buffer, aad: Buffer): Buffer | null {
    if (body.length < TAG_BYTES) return null;
    this.begin(aad);
    const plain = this.update(body.subarray(0, body.length - TAG_BYTES));
    return this.end(body.subarray(body.length - TAG_BYTES)) ? plain : null;
  }
}
