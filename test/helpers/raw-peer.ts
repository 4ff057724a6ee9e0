/**
 * Channels and raw TCP peers for tests that talk to a receiver byte by byte (authentication,
 * hostile input). Everything opened through a `Resources` is closed by its `close()`.
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import {
  type Channel,
  type ChannelConfigInput,
  createChannel,
  type Logger,
  type Member,
  silentLogger,
} from '../../src/index.js';
import { encodeFrame, FrameReader, FrameType } from '../../src/wire/frame.js';
import { encodeMember, PROTOCOL_VERSION } from '../../src/wire/member.js';
import { isolatedMulticast, waitFor } from './wait.js';

const WAIT = { timeoutMs: 15_000 };

/** Channels and sockets opened by one describe block, closed in its `after`. */
export class Resources {
  readonly channels: Channel[] = [];
  readonly sockets = new Set<Socket>();
  readonly group = isolatedMulticast();

  async node(name: string, extra: ChannelConfigInput = {}, logger: Logger = silentLogger): Promise<Channel> {
    const ch = createChannel(
      {
        name,
        domain: this.group.domain,
        receiver: { port: 0 },
        membership: { type: 'multicast', port: this.group.port, frequencyMs: 100, dropTimeMs: 600 },
        ...extra,
      },
      { logger },
    );
    this.channels.push(ch);
    await ch.start();
    return ch;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await Promise.all(this.channels.map((c) => c.stop()));
  }
}

export interface Frame {
  type: number;
  flags: number;
  body: Buffer;
}

/** A raw TCP client to a receiver that records the frames it gets and whether the server closed. */
export interface RawConn {
  readonly socket: Socket;
  readonly frames: Frame[];
  closed(): boolean;
  /** Resolves when the server has closed the connection. */
  readonly whenClosed: Promise<void>;
}

export async function rawConnect(res: Resources, port: number): Promise<RawConn> {
  const socket = connect({ host: '127.0.0.1', port });
  res.sockets.add(socket);
  const frames: Frame[] = [];
  let closed = false;
  const reader = new FrameReader(64 * 1024 * 1024, (type, flags, body) => {
    frames.push({ type, flags, body: Buffer.from(body) });
  });
  socket.on('data', (chunk: Buffer) => {
    try {
      reader.push(chunk);
    } catch {
      socket.destroy();
    }
  });
  socket.on('error', () => {});
  const whenClosed = new Promise<void>((resolve) => {
    socket.on('close', () => {
      closed = true;
      res.sockets.delete(socket);
      resolve();
    });
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, frames, closed: () => closed, whenClosed };
}

/** The member descriptor of a raw client in `domain`. */
export function rawDescriptor(domain: string): Buffer {
  return encodeMember({
    id: randomBytes(16).toString('hex'),
    protocolVersion: PROTOCOL_VERSION,
    host: '127.0.0.1',
    port: 9,
    name: 'raw-client',
    domain,
    startTime: Date.now(),
    payload: new Uint8Array(0),
  });
}

/** A DATA frame with sequence `seq`. */
export function dataFrame(seq: number, flags: number, payload: Uint8Array): Buffer {
  const body = Buffer.allocUnsafe(4 + payload.length);
  body.writeUInt32BE(seq, 0);
  body.set(payload, 4);
  return encodeFrame(FrameType.DATA, flags, body);
}

/** Waits until `a` and `b` see each other as members. */
export async function joined(a: Channel, b: Channel): Promise<void> {
  await waitFor(
    () => a.members().some((m) => m.id === b.local.id) && b.members().some((m) => m.id === a.local.id),
    `${a.config.name} and ${b.config.name} to see each other`,
    WAIT,
  );
}

/** `ch`'s view of the member with `id`. */
export function memberOf(ch: Channel, id: string): Member {
  const m = ch.members().find((x) => x.id === id);
  assert.ok(m, `member ${id} visible`);
  return m;
}
