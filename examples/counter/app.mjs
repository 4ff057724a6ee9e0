// The counter application of the shared benchmark workload (../shared/workload/README.md), as a
// plain node:http handler so that no framework caps the benchmark. Mount it at /app:
//   GET /app/counter[?payload=N]   count += 1; store a payload of N bytes (default 1024)
//   GET /app/read                  read count; the session is not changed
//   GET /app/invalidate            invalidate the session
//   GET /app/expire-soon?seconds=N set this session's max inactive interval
//   GET /app/health                no session
// Bodies are plain text ending in a newline. The session cookie is JSESSIONID=<id>.<jvmRoute>.

/** Tomcat's <distributable/>: this application's sessions are replicated. */
export const distributable = true;

const TEXT = { 'Content-Type': 'text/plain; charset=utf-8' };

function reply(res, status, body) {
  res.writeHead(status, TEXT);
  res.end(body);
}

function queryInt(url, key, fallback) {
  const q = url.indexOf('?');
  if (q < 0) return fallback;
  const m = new RegExp(`(?:^|&)${key}=(\\d+)`).exec(url.slice(q + 1));
  return m ? Number(m[1]) : fallback;
}

function payloadOf(count, n) {
  const unit = `count=${count};`;
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
}

export default function counter(req, res) {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const node = req.jvmRoute;
  switch (path) {
    case '/counter': {
      const session = req.session;
      const count = (session.count ?? 0) + 1;
      session.count = count;
      session.payload = payloadOf(count, Math.min(queryInt(url, 'payload', 1024), 1 << 20));
      return reply(res, 200, `count=${count} node=${node} id=${session.id}\n`);
    }
    case '/read': {
      const session = req.getSession(false);
      return reply(res, 200, `count=${session?.count ?? 0} node=${node}\n`);
    }
    case '/invalidate': {
      const session = req.getSession(false);
      const id = session?.id;
      if (session) session.invalidate();
      return reply(res, 200, `invalidated=${id ? 1 : 0} node=${node} id=${id ?? '-'}\n`);
    }
    case '/expire-soon': {
      const seconds = queryInt(url, 'seconds', 5);
      req.session.setMaxInactiveInterval(seconds);
      return reply(res, 200, `expires-in=${seconds} node=${node}\n`);
    }
    case '/health':
      return reply(res, 200, `ok node=${node}\n`);
    default:
      return reply(res, 404, 'not found\n');
  }
}
