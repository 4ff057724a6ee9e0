import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { after, describe, it } from 'node:test';
import { FrameSink } from '../../../src/transport/frame-sink.js';
import { FrameWriter } from '../../../src/transport/frame-writer.js';
import { createTransportStats } from '../../../src/transport/stats.js';
import { freeSlabs } from '../../../src/transport/write-slabs.js';
import { RecordOpener, RecordSealer } from '../../../src/wire/auth.js';
import { encodeFrame, FrameType, HEADER_BYTES, writeHeader } from '../../../src/wire/frame.js';

const KEY = randomBytes(32);

interface Pair {
  writer: FrameWriter;
  client: Socket;
  server: Socket;
  got: Buffer[];
  failures: unknown[];
}

const open: Socket[] = [];
after(() => {
  for (const s of open) s.destroy();
});

/** A loopback connection: frames written through a FrameWriter, read back by a FrameSink. */
async function pair(mode: 'plain' | 'mac' | 'aes'): Promise<Pair> {
  const got: Buffer[] = [];
  const failures: unknown[] = [];
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  const client = tcpConnect(port, '127.0.0.1');
  const [server] = (await once(srv, 'connection')) as [Socket];
  srv.close();
  await once(client, 'connect');
  client.setNoDelay(true);
  open.push(client, server);
  const sink: FrameSink = new FrameSink(
    1 << 20,
    (type, _flags, body) => {
      if (type === FrameType.HELLO) sink.setOpener(new RecordOpener(KEY, mode === 'aes'));
      else got.push(Buffer.from(body));
    },
    createTransportStats(),
  );
  server.on('data', (chunk: Buffer) => {
    try {
      sink.push(chunk);
    } catch (err) {
      failures.push(err);
    }
  });
  const writer = new FrameWriter(client, { bytesOut: 0 });
  if (mode !== 'plain') {
    writer.push(encodeFrame(FrameType.HELLO, 0, Buffer.from('hi')));
    writer.flush();
    writer.setSealer(new RecordSealer(KEY, mode === 'aes'));
  }
  return { writer, client, server, got, failures };
}

/** Queues a DATA frame; every other one as a separate header and payload, as the channel does. */
function pushFrame(w: FrameWriter, body: Buffer, split: boolean): void {
  if (!split) {
    w.push(encodeFrame(FrameType.DATA, 0, body));
    return;
  }
  const header = Buffer.alloc(HEADER_BYTES);
  writeHeader(header, 0, FrameType.DATA, 0, body.length);
  w.push(header);
  w.push(body);
}

/** Bodies of every size class: tiny, ~1 KiB, just under and over the copy limit, over a record. */
function bodies(n: number): Buffer[] {
  const sizes = [0, 1, 100, 1024, 3000, 16 * 1024 - 11, 16 * 1024, 40_000, 64 * 1024, 150_000];
  return Array.from({ length: n }, (_, i) =>
    randomBytes(i % 7 === 6 ? sizes[((i / 7) % sizes.length) | 0]! : 1 + ((i * 37) % 2000)),
  );
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

for (const mode of ['plain', 'mac', 'aes'] as const) {
  describe(`FrameWriter (${mode})`, () => {
    it('delivers small, large and record-spanning frames in order, over several turns and one burst', async () => {
      const p = await pair(mode);
      const sent = bodies(400);
      // Half over several event-loop turns (a flush each), half in one burst beyond FLUSH_BYTES.
      for (let i = 0; i < 200; i++) {
        pushFrame(p.writer, sent[i]!, i % 2 === 1);
        if (i % 25 === 24) await new Promise((r) => setImmediate(r));
      }
      for (let i = 200; i < sent.length; i++) pushFrame(p.writer, sent[i]!, i % 2 === 1);
      await p.writer.whenWritten();
      await until(() => p.got.length === sent.length || p.failures.length > 0, 'every frame');
      assert.deepEqual(p.failures, []);
      for (let i = 0; i < sent.length; i++) assert.ok(p.got[i]!.equals(sent[i]!), `frame ${i}`);
    });

    it('reuses a slab only after its write completed, even while the peer does not read', async () => {
      const p = await pair(mode);
      p.server.pause(); // the kernel's buffers fill; later writes wait in the socket
      const sent: Buffer[] = [];
      for (let round = 0; round < 40; round++) {
        for (let i = 0; i < 100; i++) {
          const body = randomBytes(1000 + ((round * 100 + i) % 500));
          sent.push(body);
          pushFrame(p.writer, body, i % 2 === 0);
        }
        p.writer.flush();
      }
      assert.ok(p.client.writableLength > 0, 'writes are waiting (the test needs a full kernel buffer)');
      p.server.resume();
      await p.writer.whenWritten();
      await until(() => p.got.length === sent.length || p.failures.length > 0, 'every frame');
      assert.deepEqual(p.failures, []);
      for (let i = 0; i < sent.length; i++) assert.ok(p.got[i]!.equals(sent[i]!), `frame ${i}`);
      assert.ok(freeSlabs() > 0, 'slabs came back once their writes completed');
    });
  });
}
