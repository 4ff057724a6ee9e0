import { ConfigError } from '../core/errors.js';

/**
 * Send option bits, with Tomcat Tribes' values so that `channelSendOptions="6"` means the same thing here.
 * - USE_ACK (2): the recipient acknowledges once it has read the message.
 * - SYNC_ACK (4): with USE_ACK, the acknowledgement waits until the recipient's listeners processed it.
 * - ASYNCHRONOUS (8): the send resolves once queued; delivery failures go to the channel's `sendError` event.
 */
export const SendFlag = {
  BYTE_MESSAGE: 0x01,
  USE_ACK: 0x02,
  SYNC_ACK: 0x04,
  ASYNCHRONOUS: 0x08,
} as const;

/** Bits Tribes defines that clowder refuses, with the reason. */
const UNSUPPORTED: Record<number, string> = {
  16: 'SECURE (16) has no effect in Tomcat; use clusterKey for authenticated, encrypted traffic',
  32: 'UDP (32) is not supported: every message travels over the TCP connection',
  64: 'MULTICAST (64) is not supported: send to all members instead',
};

const NAMES: Record<string, number> = {
  byte_message: SendFlag.BYTE_MESSAGE,
  byte: SendFlag.BYTE_MESSAGE,
  use_ack: SendFlag.USE_ACK,
  ack: SendFlag.USE_ACK,
  synchronized_ack: SendFlag.SYNC_ACK | SendFlag.USE_ACK,
  sync: SendFlag.SYNC_ACK | SendFlag.USE_ACK,
  asynchronous: SendFlag.ASYNCHRONOUS,
  async: SendFlag.ASYNCHRONOUS,
};

/** The forms a send-options setting accepts: Tomcat's integer, or names like `"async"`, `"use_ack,sync"`. */
export type SendOptionsInput = number | string;

const EXPECTED =
  'Tomcat send options: an integer such as 8 (async), 2 (use_ack), 6 (use_ack+sync), or names from async, use_ack, sync, joined by commas';

/**
 * Parses a send-options setting the way Tribes' `Channel.parseSendOptions` does (integer or
 * comma-separated names), except that unsupported bits are refused instead of silently ignored.
 * `sync` alone implies `use_ack`, as it has no effect without it.
 */
export function parseSendOptions(input: SendOptionsInput, key = 'sendOptions'): number {
  // Hot path: an already-parsed integer (every send may pass one).
  if (typeof input === 'number' && input >= 0 && input <= 0x0f && Number.isInteger(input)) {
    return input & SendFlag.SYNC_ACK ? input | SendFlag.USE_ACK : input;
  }
  let bits: number;
  if (typeof input === 'number' || /^\s*\d+\s*$/.test(input)) {
    bits = Number(input);
    if (!Number.isInteger(bits) || bits < 0 || bits > 0xffff) throw new ConfigError(key, EXPECTED, input);
  } else {
    bits = 0;
    for (const raw of input.split(',')) {
      const name = raw.trim();
      const bit = NAMES[name];
      if (bit === undefined) throw new ConfigError(key, EXPECTED, name);
      bits |= bit;
    }
  }
  for (const [bit, why] of Object.entries(UNSUPPORTED)) {
    if (bits & Number(bit)) throw new ConfigError(key, `${EXPECTED}; ${why}`, input);
  }
  if (bits & ~0x0f) throw new ConfigError(key, EXPECTED, input);
  if (bits & SendFlag.SYNC_ACK) bits |= SendFlag.USE_ACK;
  return bits;
}

/** Human-readable form of option bits, e.g. `"async"` or `"use_ack,sync"`. */
export function sendOptionsName(bits: number): string {
  const names: string[] = [];
  if (bits & SendFlag.ASYNCHRONOUS) names.push('async');
  if (bits & SendFlag.USE_ACK) names.push('use_ack');
  if (bits & SendFlag.SYNC_ACK) names.push('sync');
  return names.length ? names.join(',') : 'none';
}
