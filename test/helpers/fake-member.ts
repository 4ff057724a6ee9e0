/**
 * A hand-made cluster member for attack tests (no cluster key): it sends multicast heartbeats to
 * an isolated group, so a node adds it as a member, and answers the node's connections (HELLO_ACK,
 * PING → ACK) so the failure detector keeps it. Its own connections to the node are raw sockets
 * the test writes anything to. Closed by `close()`.
 */
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { encodeFrame, FrameReader, FrameType } from '../../src/wire/frame.js';
import { encodeHeartbeat, HeartbeatKind } from '../../src/wire/heartbeat.js';
import { decodeHello, encodeHello } from '../../src/wire/hello.js';
import { encodeMember, type MemberDescriptor, PROTOCOL_VERSION } from '../../src/wire/member.js';

export interface FakeMember {
  readonly id: string;
  readonly descriptor: Buffer;
  /** A HELLO frame from this member (fresh nonce). */
  hello(): Buffer;
  close(): Promise<void>;
}

export async function fakeMember(group: { port: number; domain: string }, name = 'fake-member'): Promise<FakeMember> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    const reader = new FrameReader(1024 * 1024, (type, flags, body) => {
      if (type === FrameType.HELLO) {
        const h = decodeHello(FrameType.HELLO, flags, body, undefined, 30_000);
        s.write(encodeHello(FrameType.HELLO_ACK, descriptor, undefined, false, h.nonce).frame);
      } else if (type === FrameType.PING) {
        const ack = Buffer.concat([body.subarray(0, 4), descriptor]);
        s.write(encodeFrame(FrameType.ACK, 0, ack));
      } else if (type === FrameType.DATA || type === FrameType.LEAVE) {
        const seq = body.readUInt32BE(0);
        const ack = Buffer.alloc(4);
        ack.writeUInt32BE(seq, 0);
        s.write(encodeFrame(FrameType.ACK, 0, ack));
      }
    });
    s.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch {
        s.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const desc: MemberDescriptor = {
    id: randomBytes(16).toString('hex'),
    protocolVersion: PROTOCOL_VERSION,
    host: '127.0.0.1',
    port,
    name,
    domain: group.domain,
    startTime: Date.now(),
    payload: new Uint8Array(0),
  };
  const descriptor = encodeMember(desc);
  const udp = createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  udp.setMulticastInterface('127.0.0.1');
  udp.setMulticastTTL(0);
  udp.setMulticastLoopback(true);
  let seq = 1n;
  const beat = () =>
    udp.send(encodeHeartbeat(HeartbeatKind.ALIVE, seq++, descriptor, undefined), group.port, '228.0.0.4');
  beat();
  const timer = setInterval(beat, 100);
  return {
    id: desc.id,
    descriptor,
    hello: () => encodeHello(FrameType.HELLO, descriptor, undefined, false).frame,
    async close() {
      clearInterval(timer);
      udp.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
