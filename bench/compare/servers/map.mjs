// Row "map": a hand-written in-memory session layer on node:http — the ceiling for any session
// layer: parse the JSESSIONID cookie, one Map lookup, count += 1 on a shared object, build the
// payload string. Sessions expire after their max inactive interval (checked on access only).
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { cookieSessionId } from '../../lib/workload.mjs';
import { COOKIE, NAME, payloadBytes, payloadOf, queryInt, serveHttp, TEXT } from './common.mjs';

const sessions = new Map(); // id -> { id, count, payload, maxInactiveMs, lastAccess }
const DEFAULT_MAX_INACTIVE_MS = 1_800_000;
const SUFFIX = `.${NAME}`;

function find(req, now) {
  const id = cookieSessionId(req.headers.cookie);
  if (id === undefined) return undefined;
  const s = sessions.get(id);
  if (s === undefined) return undefined;
  if (now - s.lastAccess > s.maxInactiveMs) {
    sessions.delete(id);
    return undefined;
  }
  s.lastAccess = now;
  return s;
}

function create(res, now) {
  const id = randomBytes(16).toString('hex');
  const s = { id, count: 0, payload: '', maxInactiveMs: DEFAULT_MAX_INACTIVE_MS, lastAccess: now };
  sessions.set(id, s);
  res.setHeader('Set-Cookie', `${COOKIE}=${id}${SUFFIX}; Path=/app; HttpOnly`);
  return s;
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const now = Date.now();
  let body;
  switch (path) {
    case '/app/counter': {
      const s = find(req, now) ?? create(res, now);
      const count = s.count + 1;
      s.count = count;
      s.payload = payloadOf(count, payloadBytes(url));
      body = `count=${count} node=${NAME} id=${s.id}${SUFFIX}\n`;
      break;
    }
    case '/app/read':
      body = `count=${find(req, now)?.count ?? 0} node=${NAME}\n`;
      break;
    case '/app/invalidate': {
      const s = find(req, now);
      if (s) sessions.delete(s.id);
      body = `invalidated=${s ? 1 : 0} node=${NAME} id=${s ? `${s.id}${SUFFIX}` : '-'}\n`;
      break;
    }
    case '/app/expire-soon': {
      const seconds = queryInt(url, 'seconds', 5);
      const s = find(req, now) ?? create(res, now);
      s.maxInactiveMs = seconds * 1000;
      body = `expires-in=${seconds} node=${NAME}\n`;
      break;
    }
    case '/app/health':
      body = `ok node=${NAME}\n`;
      break;
    default:
      res.writeHead(404, TEXT).end('not found\n');
      return;
  }
  res.writeHead(200, TEXT).end(body);
});
serveHttp(server);
