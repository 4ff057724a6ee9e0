// Row "bare": plain node:http, no sessions at all — the ceiling for any HTTP server on this machine.
// /app/counter answers a fixed body (no session, no payload, no cookie), /app/read says count=0.
import { createServer } from 'node:http';
import { NAME, serveHttp, TEXT } from './common.mjs';

const COUNTER = `count=1 node=${NAME} id=-\n`;
const READ = `count=0 node=${NAME}\n`;
const HEALTH = `ok node=${NAME}\n`;

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  let body;
  switch (path) {
    case '/app/counter':
      body = COUNTER;
      break;
    case '/app/read':
      body = READ;
      break;
    case '/app/invalidate':
      body = `invalidated=0 node=${NAME} id=-\n`;
      break;
    case '/app/expire-soon':
      body = `expires-in=0 node=${NAME}\n`;
      break;
    case '/app/health':
      body = HEALTH;
      break;
    default:
      res.writeHead(404, TEXT).end('not found\n');
      return;
  }
  res.writeHead(200, TEXT).end(body);
});
serveHttp(server);
