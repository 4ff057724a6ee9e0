/** What a proxy passes on of a message's headers (the balancer and owner forwarding). */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';

/** Hop-by-hop headers (RFC 9110 §7.6.1): a proxy never passes them on (nor those `Connection` lists). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** `headers` without the hop-by-hop ones and those their `Connection` header lists. */
export function endToEndHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const listed = connectionTokens(headers.connection);
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || listed?.has(k)) continue;
    out[k] = v;
  }
  return out;
}

/** The request's X-Forwarded-For with its peer's address appended. */
export function forwardedFor(req: IncomingMessage): string {
  const peer = req.socket.remoteAddress ?? '';
  const prior = req.headers['x-forwarded-for'];
  return prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${peer}` : peer;
}

/** Header names listed in Connection (also hop-by-hop). */
function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined || value === 'keep-alive' || value === 'close') return undefined;
  return new Set(value.split(',').map((t) => t.trim().toLowerCase()));
}
