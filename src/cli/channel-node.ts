/**
 * `clowder channel`: runs one channel member in the foreground and prints what it sees, one line
 * per event (membership changes, messages, round trips). Stops gracefully on SIGTERM/SIGINT.
 */
import { createChannel } from '../channel/channel.js';
import type { ChannelConfigInput } from '../config/channel-config.js';
import { createLogger } from '../core/logger.js';

export interface ChannelNodeOptions {
  config: ChannelConfigInput;
  /** Send a ping to every member every this many ms and print the round trip (0 = never). */
  pingEveryMs: number;
  /** Print lines as JSON (for scripts) instead of text. */
  json: boolean;
}

export async function runChannelNode(options: ChannelNodeOptions): Promise<void> {
  const channel = createChannel(options.config, { logger: createLogger(process.env.CLOWDER_LOG_LEVEL ?? 'warn') });
  const name = channel.config.name;
  const print = (event: string, fields: Record<string, unknown>) => {
    if (options.json) process.stdout.write(`${JSON.stringify({ node: name, event, at: Date.now(), ...fields })}\n`);
    else {
      const rest = Object.entries(fields)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      process.stdout.write(`[${name}] ${event} ${rest}\n`);
    }
  };
  channel.on('memberAdded', (m) =>
    print('member-added', { member: m.name, address: `${m.host}:${m.port}`, id: m.id.slice(0, 8) }),
  );
  channel.on('memberRemoved', (m, reason) => print('member-removed', { member: m.name, reason }));
  channel.on('memberRejoined', (m) => print('member-rejoined', { member: m.name, id: m.id.slice(0, 8) }));
  // The handler reads each message before it returns and keeps nothing: it can borrow.
  channel.onMessage(
    (msg) => {
      const v = msg.value as { ping?: number } | undefined;
      if (v && typeof v.ping === 'number') return; // pings are answered by the acknowledgement itself
      print('message', { from: msg.from.name, value: JSON.stringify(msg.value) });
    },
    { borrow: true },
  );
  await channel.start();
  print('started', { address: `${channel.local.host}:${channel.local.port}`, id: channel.local.id.slice(0, 8) });

  let timer: NodeJS.Timeout | undefined;
  if (options.pingEveryMs > 0) {
    let n = 0;
    timer = setInterval(() => {
      for (const m of channel.members()) {
        const t0 = process.hrtime.bigint();
        channel.send(m, { ping: ++n }, { options: 'use_ack,sync' }).then(
          () => print('round-trip', { to: m.name, micros: Number((process.hrtime.bigint() - t0) / 1000n) }),
          (err: Error) => print('send-failed', { to: m.name, error: err.message }),
        );
      }
    }, options.pingEveryMs);
  }

  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  clearInterval(timer);
  print('stopping', {});
  await channel.stop();
}
