/** Test helpers: wait for a condition with a deadline (never a bare sleep), ephemeral ports. */
import { createServer } from 'node:net';

/** Polls `predicate` every `intervalMs` until it is truthy; rejects after `timeoutMs` naming `what`. */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  what: string,
  { timeoutMs = 10_000, intervalMs = 5 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves when `emitter` emits `event` with arguments matching `filter`, or rejects after timeoutMs. */
export function nextEvent<A extends unknown[]>(
  emitter: { on(e: string, f: (...a: A) => void): unknown; off(e: string, f: (...a: A) => void): unknown },
  event: string,
  filter: (...args: A) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<A> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for event ${event}`));
    }, timeoutMs);
    const handler = (...args: A) => {
      if (!filter(...args)) return;
      clearTimeout(timer);
      emitter.off(event, handler);
      resolve(args);
    };
    emitter.on(event, handler);
  });
}

/** `n` distinct free TCP ports on 127.0.0.1 (bound and released; the OS will not hand them out again soon). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import('node:net').Server>((resolve) => {
          const s = createServer();
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** A random multicast port and domain per test, so parallel tests never hear each other. */
export function isolatedMulticast(): { port: number; domain: string } {
  return { port: 40000 + Math.floor(Math.random() * 20000), domain: `t${Math.random().toString(36).slice(2, 10)}` };
}
