/** Test helpers: wait for a condition with a deadline (never a bare sleep), fixed ports that stay free. */
import { readFileSync } from 'node:fs';
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

/**
 * The ports the kernel hands out for `listen(0)` and for every outgoing connection. A fixed port
 * picked from this range can be taken by any socket of any test before the node binds it.
 */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo !== undefined && hi !== undefined && Number.isInteger(lo) && Number.isInteger(hi)) return [lo, hi];
  } catch {}
  return [32768, 60999];
}

/** Where fixed ports are drawn from: below the ephemeral range (or above it when that is too low). */
const FIXED_RANGE: [number, number] = (() => {
  const [lo, hi] = ephemeralRange();
  if (lo - 1 >= 20000 + 4096) return [20000, lo - 1];
  return [hi + 1, 65535];
})();
const handedOut = new Set<number>();

function tryBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/**
 * `n` distinct TCP ports on 127.0.0.1 for nodes that must know their port before they bind (a
 * balancer's backends, an advertised HTTP port). Drawn at random outside the kernel's ephemeral
 * range, so no other socket takes one in between, never twice in this process, each checked free.
 */
export async function freePorts(n: number): Promise<number[]> {
  const [lo, hi] = FIXED_RANGE;
  const ports: number[] = [];
  for (let tries = 0; ports.length < n; tries++) {
    if (tries > 1000) throw new Error(`no free port found in ${lo}-${hi} after 1000 tries`);
    const port = lo + Math.floor(Math.random() * (hi - lo + 1));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await tryBind(port)) ports.push(port);
  }
  return ports;
}

/** A random multicast port and domain per test, so parallel tests never hear each other. */
export function isolatedMulticast(): { port: number; domain: string } {
  return { port: 40000 + Math.floor(Math.random() * 20000), domain: `t${Math.random().toString(36).slice(2, 10)}` };
}
