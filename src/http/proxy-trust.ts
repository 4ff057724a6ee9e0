/**
 * What a request's connection and the proxies in front of the server say about its client, and
 * who may read the status endpoints.
 *
 * - A request is HTTPS when its socket is TLS, or when a trusted proxy (`trustProxy`) is the
 *   peer and the first `X-Forwarded-Proto` value is `https` (as Express and express-session read
 *   it). An untrusted peer's header is ignored: any client can write it.
 * - The status endpoints are served to loopback peers only when no proxy forwarded the request:
 *   behind a reverse proxy on the same host every request comes from 127.0.0.1, so a request with
 *   a forwarding header counts as remote, whatever `trustProxy` says (with `trustProxy: true` the
 *   client address a proxy reports is the one the client wrote). Remote clients need the admin
 *   token (`Authorization: Bearer <token>`).
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AdminToken } from '../config/admin-token.js';
import type { ProxyTrust } from '../config/trust-proxy.js';
import { isLoopback } from '../core/net.js';

/** Whether the request came over HTTPS: a TLS socket, or a trusted proxy's `X-Forwarded-Proto: https`. */
export function requestIsSecure(req: IncomingMessage, trust: ProxyTrust): boolean {
  const socket = req.socket;
  if ((socket as TLSSocket).encrypted === true) return true;
  const header = req.headers['x-forwarded-proto'];
  if (header === undefined || !trust.trustsPeer(socket.remoteAddress)) return false;
  // The first value: the protocol the client used with the outermost proxy (node:http joins
  // repeated X- headers with ", ").
  const proto = typeof header === 'string' ? header : (header[0] ?? '');
  const comma = proto.indexOf(',');
  return (comma < 0 ? proto : proto.slice(0, comma)).trim().toLowerCase() === 'https';
}

/** Headers a reverse proxy adds to what it forwards (RFC 7239, the X-Forwarded-* family, nginx's X-Real-IP, Via). */
const FORWARDING_HEADERS = [
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
  'via',
];

/** Whether a proxy (or a client pretending to be one) forwarded this request. */
export function forwarded(req: IncomingMessage): boolean {
  const h = req.headers;
  for (const name of FORWARDING_HEADERS) if (h[name] !== undefined) return true;
  return false;
}

/** `Authorization: Bearer <token>` → the token; undefined without that header or scheme. */
function bearerToken(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth === undefined) return undefined;
  const m = /^bearer +([^ ]+) *$/i.exec(auth);
  return m?.[1];
}

/**
 * Whether the status endpoints may answer this request: with an admin token configured, a request
 * that presents a bearer token is decided by that token alone (a wrong one is refused even from
 * loopback); otherwise only a loopback peer whose request carries no forwarding header.
 */
export function statusAllowed(req: IncomingMessage, token: AdminToken | undefined): boolean {
  if (token !== undefined) {
    const presented = bearerToken(req);
    if (presented !== undefined) return token.matches(presented);
  }
  return isLoopback(req.socket.remoteAddress ?? '') && !forwarded(req);
}
