/**
 * Member objects by id, decoded once from their descriptors (a descriptor's payload is decoded
 * with the codec only when it changes): what messages, events and views hand the application.
 */
import { decode } from '../codec/value-codec.js';
import type { MemberDescriptor } from '../wire/member.js';
import type { Member } from './types.js';

export class MemberCache {
  readonly #known = new Map<string, Member>();

  /** The Member for a descriptor: the cached one while its start time and payload are unchanged. */
  get(d: MemberDescriptor): Member {
    const cached = this.#known.get(d.id);
    if (cached !== undefined && cached.startTime === d.startTime && sameBytes(payloadOf(cached), d.payload))
      return cached;
    let payload: unknown;
    try {
      payload = d.payload.length === 0 ? undefined : decode(d.payload);
    } catch {
      payload = undefined;
    }
    const m: Member = Object.freeze({
      id: d.id,
      name: d.name,
      host: d.host,
      port: d.port,
      domain: d.domain,
      startTime: d.startTime,
      protocolVersion: d.protocolVersion,
      payload,
    });
    payloadBytesOf.set(m, d.payload);
    if (this.#known.size > 10_000) this.#known.clear();
    this.#known.set(d.id, m);
    return m;
  }
}

const EMPTY = new Uint8Array(0);
const payloadBytesOf = new WeakMap<Member, Uint8Array>();
function payloadOf(m: Member): Uint8Array {
  return payloadBytesOf.get(m) ?? EMPTY;
}
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
