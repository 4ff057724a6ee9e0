import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/** True for 127.0.0.0/8, ::1 and "localhost": addresses no other host can reach. */
export function isLoopback(address: string): boolean {
  if (address === 'localhost' || address === '::1' || address === '0:0:0:0:0:0:0:1') return true;
  if (address.startsWith('::ffff:')) address = address.slice(7);
  return isIP(address) === 4 && address.startsWith('127.');
}

/** The first non-internal IPv4 address of this host ("auto"), or undefined when there is none. */
export function firstExternalIPv4(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

/** Parses "host:port" / "[v6]:port". Returns undefined when malformed. */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}
