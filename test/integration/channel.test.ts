import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type Channel,
  type ClusterError,
  createChannel,
  type Member,
  type ReceivedMessage,
  SendError,
  silentLogger,
} from '../../src/index.js';
import { PROTOCOL_VERSION } from '../../src/wire/member.js';
import { freePorts, isolatedMulticast, nextEvent, waitFor } from '../helpers/wait.js';

function trio(extra: Record<string, unknown> = {}): Channel[] {
  const { port, domain } = isolatedMulticast();
  return ['a', 'b', 'c'].map((name) =>
    createChannel(
      {
        name,
        domain,
        receiver: { port: 0 },
        membership: { type: 'multicast', port, frequencyMs: 100, dropTimeMs: 1000 },
        ...extra,
      },
      { logger: silentLogger },
    ),
  );
}

const names = (ch: Channel) =>
  ch
    .members()
    .map((m) => m.name)
    .sort()
    .join(',');

describe('three channels in one process (multicast)', () => {
  let nodes: Channel[] = [];
  before(async () => {
    nodes = trio();
    await Promise.all(nodes.map((n) => n.start()));
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  test('membership forms: each member sees the others with their descriptors', async (t) => {
    const t0 = Date.now();
    await waitFor(() => nodes.every((n) => n.members().length === 2), 'full membership');
    t.diagnostic(`formed ${Date.now() - t0} ms after the channels started (heartbeat every 100 ms)`);
    assert.equal(names(nodes[0]!), 'b,c');
    const b = nodes[0]!.members().find((m) => m.name === 'b')!;
    assert.match(b.id, /^[0-9a-f]{32}$/);
    assert.equal(b.port, nodes[1]!.local.port);
    assert.equal(b.host, '127.0.0.1');
    assert.equal(b.protocolVersion, PROTOCOL_VERSION);
  });

  test('a use_ack,sync send resolves only after the recipient processed the message', async () => {
    const [a, b] = nodes as [Channel, Channel, Channel];
    let release!: () => void;
    const processing = new Promise<void>((r) => {
      release = r;
    });
    let processed = false;
    const off = b.onMessage(async (msg) => {
      assert.deepEqual(msg.value, { step: 1, at: new Date(5), tags: new Set(['x']) });
      await processing;
      processed = true;
    });
    try {
      const bMember = a.members().find((m) => m.name === 'b')!;
      let resolved = false;
      const sending = a
        .send(bMember, { step: 1, at: new Date(5), tags: new Set(['x']) }, { options: 'use_ack,sync' })
        .then(() => {
          resolved = true;
        });
      await waitFor(() => b.stats().messages.received === 1, 'b to receive');
      // Received but not processed: the sender must still be waiting.
      await new Promise((r) => setImmediate(r));
      assert.equal(resolved, false);
      release();
      await sending;
      assert.equal(processed, true);
    } finally {
      off();
    }
  });

  test('use_ack (on receipt) resolves before processing ends', async () => {
    const [a, b] = nodes as [Channel, Channel, Channel];
    let release!: () => void;
    const processing = new Promise<void>((r) => {
      release = r;
    });
    const off = b.onMessage(() => processing);
    try {
      const bMember = a.members().find((m) => m.name === 'b')!;
      let acknowledged = false;
      const sending = a.send(bMember, 'hi', { options: 'use_ack' }).then(() => {
        acknowledged = true;
      });
      // Resolves while b's handler is still pending (it is released only afterwards).
      await waitFor(() => acknowledged, 'the acknowledgement on receipt');
      await sending;
      release();
    } finally {
      off();
    }
  });

  test('a handler failure rejects a synchronous send with the remote reason', async () => {
    const [a, b] = nodes as [Channel, Channel, Channel];
    const off = b.onMessage(() => {
      throw new Error('cart is locked');
    });
    try {
      const bMember = a.members().find((m) => m.name === 'b')!;
      await assert.rejects(a.send(bMember, 'x', { options: 6 }), (err: SendError) => {
        assert.ok(err instanceof SendError);
        assert.equal(err.faulty[0]!.name, 'b');
        assert.equal(err.faulty[0]!.error.code, 'ERR_CLOWDER_REMOTE_PROCESSING');
        assert.match(err.message, /cart is locked/);
        return true;
      });
    } finally {
      off();
    }
  });

  test('an unencodable value is refused before anything is sent, naming where', async () => {
    const [a] = nodes as [Channel];
    await assert.rejects(a.send(undefined, { cart: { onChange: () => 1 } }), (err: ClusterError) => {
      assert.equal(err.code, 'ERR_CLOWDER_CODEC_ENCODE');
      assert.match(err.message, /cart\.onChange/);
      return true;
    });
  });

  test('asynchronous sends to all members arrive in order', async () => {
    const [a, b, c] = nodes as [Channel, Channel, Channel];
    const got: Record<string, number[]> = { b: [], c: [] };
    const offB = b.onMessage((m) => {
      got.b!.push(m.value as number);
    });
    const offC = c.onMessage((m) => {
      got.c!.push(m.value as number);
    });
    try {
      for (let i = 0; i < 2000; i++) void a.send(undefined, i);
      await waitFor(() => got.b!.length === 2000 && got.c!.length === 2000, 'all 2000 messages at b and c');
      assert.deepEqual(
        got.b,
        Array.from({ length: 2000 }, (_, i) => i),
      );
      assert.deepEqual(got.c, got.b);
    } finally {
      offB();
      offC();
    }
  });
});

describe('acknowledged send with a recipient down', () => {
  // The channel's own timeout is a minute: a send that ends far sooner ended by its timeoutMs (or
  // at once), whatever the machine's load; a bound near the timeout would measure the load.
  const CHANNEL_TIMEOUT = { sender: { timeoutMs: 60_000 } };

  test('rejects naming the member that failed, within the timeout, while the others succeed', async () => {
    const nodes = trio(CHANNEL_TIMEOUT);
    try {
      await Promise.all(nodes.map((n) => n.start()));
      const [a, b, c] = nodes as [Channel, Channel, Channel];
      await waitFor(() => a.members().length === 2, 'membership');
      const cMember = a.members().find((m) => m.name === 'c')!;
      const bMember = a.members().find((m) => m.name === 'b')!;
      let bGot = 0;
      b.onMessage(() => {
        bGot++;
      });
      await c.stop();
      const t0 = Date.now();
      await assert.rejects(
        a.send([bMember, cMember], 'payload', { options: 'use_ack,sync', timeoutMs: 2000 }),
        (err: SendError) => {
          assert.ok(err instanceof SendError);
          assert.deepEqual(
            err.faulty.map((f) => f.name),
            ['c'],
          );
          return true;
        },
      );
      const took = Date.now() - t0;
      assert.ok(took < 30_000, `took ${took} ms: the send's timeoutMs (2000) was not its bound`);
      assert.equal(bGot, 1);
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });

  test('a recipient that never finishes processing times out, named', async () => {
    const nodes = trio(CHANNEL_TIMEOUT);
    try {
      await Promise.all(nodes.map((n) => n.start()));
      const [a, b] = nodes as [Channel, Channel];
      await waitFor(() => a.members().length === 2, 'membership');
      b.onMessage(() => new Promise(() => {}));
      const bMember = a.members().find((m) => m.name === 'b')!;
      const t0 = Date.now();
      await assert.rejects(a.send(bMember, 1, { options: 6, timeoutMs: 300 }), (err: SendError) => {
        assert.equal(err.faulty[0]!.name, 'b');
        assert.equal(err.faulty[0]!.error.code, 'ERR_CLOWDER_SEND_TIMEOUT');
        return true;
      });
      const took = Date.now() - t0;
      // Not before its timeoutMs (300); ended by it, not by the channel's (60 s).
      assert.ok(took >= 290, `timed out after ${took} ms, before its timeoutMs (300)`);
      assert.ok(took < 30_000, `took ${took} ms: the send's timeoutMs (300) was not its bound`);
      // A slow handler is not a dead member: b stays.
      assert.ok(a.members().some((m: Member) => m.name === 'b'));
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
});

describe('stopping', () => {
  test('a second stop() resolves only once the first one has finished: the others saw the member leave', async () => {
    const ports = await freePorts(2);
    const members = ports.map((p) => `127.0.0.1:${p}`);
    const [a, b] = ['a', 'b'].map((name, i) =>
      createChannel(
        { name, receiver: { port: ports[i]!, autoBind: 1 }, membership: { type: 'static', members } },
        { logger: silentLogger },
      ),
    ) as [Channel, Channel];
    try {
      await Promise.all([a.start(), b.start()]);
      await waitFor(() => a.members().length === 1 && b.members().length === 1, 'membership', { timeoutMs: 15_000 });
      const first = a.stop(); // tells b it leaves, and waits for b's acknowledgement, before it closes
      await a.stop();
      // Checked at once, no waiting: the LEAVE was acknowledged after b processed it.
      assert.equal(b.members().length, 0, 'b still lists a when the second stop() resolved');
      await first;
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('static membership in one process', () => {
  test('forms from one shared list that includes each node itself; a graceful stop is seen at once', async () => {
    const ports = await freePorts(3);
    const members = ports.map((p) => `127.0.0.1:${p}`);
    const nodes = ['a', 'b', 'c'].map((name, i) =>
      createChannel(
        {
          name,
          receiver: { port: ports[i]!, autoBind: 1 },
          membership: { type: 'static', members, pingIntervalMs: 100, dropTimeMs: 1000 },
        },
        { logger: silentLogger },
      ),
    );
    try {
      await Promise.all(nodes.map((n) => n.start()));
      await waitFor(() => nodes.every((n) => n.members().length === 2), 'static membership');
      const [a, b] = nodes as [Channel, Channel];
      // "At once" is the reason, not a window: a member suspected after dropTime is removed as such.
      const gone = nextEvent(a, 'memberRemoved', (m: Member) => m.name === 'b');
      await b.stop();
      const [, reason] = (await gone) as unknown as [Member, string];
      assert.equal(reason, 'leave', 'seen as a leave at once, not suspected after dropTime');
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
});

for (const [label, security] of [
  ['no cluster key', {}],
  ['cluster key, AES-256-GCM', { clusterKey: 'a-cluster-key-for-the-borrow-tests-0123456789', encrypt: true }],
] as const) {
  describe(`borrowing handlers ({ borrow: true }), ${label}`, () => {
    const SIZE = 100 * 1024; // over one socket read: every message spans reads
    const COUNT = 40;
    /** Message i: its index, then bytes (i + k) & 0xff, so a reused buffer left stale shows. */
    const messageOf = (i: number): Buffer => {
      const b = Buffer.allocUnsafe(SIZE);
      b.writeUInt32BE(i, 0);
      for (let k = 4; k < SIZE; k++) b[k] = (i + k) & 0xff;
      return b;
    };
    const intact = (b: Buffer): boolean => {
      const i = b.readUInt32BE(0);
      if (b.length !== SIZE) return false;
      for (let k = 4; k < SIZE; k += 997) if (b[k] !== ((i + k) & 0xff)) return false;
      return b[SIZE - 1] === ((i + SIZE - 1) & 0xff);
    };

    let a: Channel;
    let b: Channel;
    let toB: Member;
    before(async () => {
      const ports = await freePorts(2);
      const members = ports.map((p) => `127.0.0.1:${p}`);
      [a, b] = ['a', 'b'].map((name, i) =>
        createChannel(
          { name, receiver: { port: ports[i]!, autoBind: 1 }, membership: { type: 'static', members }, ...security },
          { logger: silentLogger },
        ),
      ) as [Channel, Channel];
      await Promise.all([a.start(), b.start()]);
      await waitFor(() => a.members().length === 1 && b.members().length === 1, 'membership', { timeoutMs: 15_000 });
      toB = a.members()[0]!;
    });
    after(async () => {
      await Promise.all([a.stop(), b.stop()]);
    });

    /** Sends COUNT byte messages to b in one burst and waits until b's handlers saw them all. */
    async function burst(seen: () => number): Promise<void> {
      for (let i = 0; i < COUNT; i++) void a.send(toB, messageOf(i));
      await a.flush();
      await waitFor(() => seen() === COUNT, `${COUNT} messages on b`, { timeoutMs: 10_000 });
    }

    test('large messages arrive intact through one reused buffer; reading one after the handler returned throws', async () => {
      const ids: number[] = [];
      const buffers = new Set<ArrayBufferLike>();
      const kept: ReceivedMessage[] = [];
      let corrupt = 0;
      const off = b.onMessage(
        (msg) => {
          if (!intact(msg.bytes)) corrupt++;
          ids.push(msg.bytes.readUInt32BE(0));
          buffers.add(msg.bytes.buffer);
          kept.push(msg);
        },
        { borrow: true },
      );
      try {
        await burst(() => ids.length);
        assert.equal(corrupt, 0);
        assert.deepEqual(ids, [...Array(COUNT).keys()]);
        // Without reuse every message would have a buffer of its own.
        assert.ok(buffers.size < COUNT / 2, `${buffers.size} buffers for ${COUNT} messages`);
        for (const msg of kept) {
          assert.throws(() => msg.bytes, { code: 'ERR_CLOWDER_MESSAGE_EXPIRED', message: /borrow: true/ });
          assert.throws(() => msg.value, { code: 'ERR_CLOWDER_MESSAGE_EXPIRED' });
        }
      } finally {
        off();
      }
    });

    test('one handler that keeps messages is enough for every message to stay valid', async () => {
      const borrowed: number[] = [];
      const kept: Buffer[] = [];
      const offBorrow = b.onMessage((msg) => void borrowed.push(msg.bytes.readUInt32BE(0)), { borrow: true });
      const offKeep = b.onMessage((msg) => void kept.push(msg.bytes));
      try {
        await burst(() => kept.length);
        assert.equal(borrowed.length, COUNT);
        // Checked after all arrived: none was overwritten by a later message.
        assert.deepEqual(
          kept.map((k) => k.readUInt32BE(0)),
          [...Array(COUNT).keys()],
        );
        assert.ok(kept.every(intact), 'every kept message intact');
        assert.equal(new Set(kept.map((k) => k.buffer)).size, COUNT, 'each kept message has its own memory');
      } finally {
        offBorrow();
        offKeep();
      }
      // With the keeper gone, borrowing resumes: messages expire after the call again.
      let last: ReceivedMessage | undefined;
      const off = b.onMessage(
        (msg) => {
          last = msg;
        },
        { borrow: true },
      );
      try {
        void a.send(toB, messageOf(0));
        await waitFor(() => last !== undefined, 'one more message');
        assert.throws(() => last!.bytes, { code: 'ERR_CLOWDER_MESSAGE_EXPIRED' });
      } finally {
        off();
      }
    });
  });
}
