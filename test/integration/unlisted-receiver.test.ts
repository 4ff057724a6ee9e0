/**
 * A receiver that autoBind moved off its configured port (it was taken), or one configured outside
 * its own static member list, is where no other member looks: the channel warns at start with both
 * ports and the fix, and says so in stats (receiver.unlisted). A listed receiver is quiet.
 */
import * as assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { type Channel, createChannel } from '../../src/channel/channel.js';
import type { Logger } from '../../src/core/logger.js';
import { portIsFree } from '../helpers/node-process.js';
import { freePorts } from '../helpers/wait.js';

/** A logger that keeps its warnings. */
function recordingLogger(): Logger & { warnings: { obj: object; msg: string }[] } {
  const warnings: { obj: object; msg: string }[] = [];
  const logger = {
    warnings,
    debug() {},
    info() {},
    error() {},
    warn(obj: object, msg = '') {
      warnings.push({ obj, msg });
    },
    child: () => logger,
  };
  return logger;
}

const channels: Channel[] = [];
after(async () => {
  for (const c of channels) await c.stop();
});

/** `n` consecutive free ports on 127.0.0.1 (autoBind tries port, port + 1, …). */
async function consecutiveFree(n: number): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const ports = Array.from({ length: n }, (_, i) => base + i);
    if ((await Promise.all(ports.map(portIsFree))).every(Boolean)) return ports;
  }
  throw new Error('no run of free ports found');
}

function start(port: number, members: string[], logger: Logger): Promise<Channel> {
  const channel = createChannel(
    { insecure: true, receiver: { port, autoBind: 10 }, membership: { type: 'static', members } },
    { logger },
  );
  channels.push(channel);
  return channel.start().then(() => channel);
}

describe('receiver outside the static member list', () => {
  it('autoBind moving the receiver off a taken port warns with both ports and the fix', async () => {
    const [taken, other] = await freePorts(2);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen({ host: '127.0.0.1', port: taken, exclusive: true }, r));
    try {
      const logger = recordingLogger();
      const channel = await start(taken!, [`127.0.0.1:${taken}`, `127.0.0.1:${other}`], logger);
      const bound = channel.local.port;
      assert.notEqual(bound, taken, 'autoBind moved the receiver');
      const warning = logger.warnings.find((w) => w.msg.includes('not in membership.members'));
      assert.ok(warning, `warned: ${JSON.stringify(logger.warnings)}`);
      assert.match(warning.msg, new RegExp(`receiver.port ${taken} was taken.*127\\.0\\.0\\.1:${bound}`));
      assert.match(warning.msg, /Fix: .*autoBind: 1/);
      assert.deepEqual(warning.obj, { bound: `127.0.0.1:${bound}`, configuredPort: taken });
      assert.deepEqual(channel.stats().receiver, { port: bound, unlisted: true });
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it("autoBind moving the receiver onto another listed member's port warns too (it takes that member's place)", async () => {
    const [taken, next] = (await consecutiveFree(2)) as [number, number];
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen({ host: '127.0.0.1', port: taken, exclusive: true }, r));
    try {
      const logger = recordingLogger();
      const channel = await start(taken, [`127.0.0.1:${taken}`, `127.0.0.1:${next}`], logger);
      assert.equal(channel.local.port, next, "autoBind took the next port: the other member's entry");
      assert.match(
        logger.warnings[0]?.msg ?? '',
        new RegExp(
          `moved this node's receiver to 127\\.0\\.0\\.1:${next}, the entry membership.members lists for another member`,
        ),
      );
      assert.equal(channel.stats().receiver.unlisted, true);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('a configured port outside the list warns too; a listed one (even as "localhost") is quiet', async () => {
    const [port, a, b] = await freePorts(3);
    const outside = recordingLogger();
    const unlisted = await start(port!, [`127.0.0.1:${a}`, `127.0.0.1:${b}`], outside);
    assert.match(outside.warnings[0]?.msg ?? '', new RegExp(`bound at 127\\.0\\.0\\.1:${port}, which is not in`));
    assert.equal(unlisted.stats().receiver.unlisted, true);
    await unlisted.stop();

    const quiet = recordingLogger();
    const listed = await start(port!, [`localhost:${port}`, `127.0.0.1:${a}`], quiet);
    assert.deepEqual(quiet.warnings, []);
    assert.deepEqual(listed.stats().receiver, { port, unlisted: false });
  });
});
