/**
 * The client of scripts/express-examples-differential.mjs, after the one of
 * test/integration/drop-in/express-session-differential.test.ts (that test's is TypeScript inside
 * the test; this script runs on dist/ only): one cookie jar per script, a transcript of what
 * matters in each response, the comparison of two transcripts.
 *
 * A transcript entry: status, Content-Type, Location, body, and the session cookie if one was
 * set — whether its id is new to the client, and its attributes (Expires as the lifetime it gives,
 * Max-Age checked against it and dropped: clowder sends both, express-session only Expires).
 */
import http from 'node:http';
import { isDeepStrictEqual } from 'node:util';

/** express-session's default cookie name; clowder is given it as cookieName. */
export const COOKIE = 'connect.sid';

/** The session id in a cookie value: express-session `s:<id>.<sig>` (URL-encoded), clowder `<id>.<route>`. */
function idOf(value) {
  const v = decodeURIComponent(value);
  return v.startsWith('s:') ? v.slice(2, v.lastIndexOf('.')) : v.slice(0, v.indexOf('.'));
}

function cookieRecord(line, date, previousId) {
  const [pair, ...rest] = line.split(/;\s*/);
  const value = pair.slice(COOKIE.length + 1);
  const attrs = {};
  for (const a of rest) {
    const eq = a.indexOf('=');
    attrs[(eq < 0 ? a : a.slice(0, eq)).toLowerCase()] = eq < 0 ? '' : a.slice(eq + 1);
  }
  if (attrs.expires !== undefined) {
    const expires = Date.parse(attrs.expires);
    attrs.expires = `lifetime ≈ ${Math.round((expires - date) / 60_000)} min`;
    if (attrs['max-age'] !== undefined && Math.abs(expires - (date + Number(attrs['max-age']) * 1000)) > 2000)
      attrs.expires += ` (Max-Age ${attrs['max-age']} disagrees)`;
  } else if (attrs['max-age'] !== undefined) attrs.expires = `none, but Max-Age ${attrs['max-age']}`;
  delete attrs['max-age'];
  return { rec: { newId: idOf(value) !== previousId, attrs }, value };
}

function request(port, step, cookie) {
  const body = step.form ? new URLSearchParams(step.form).toString() : undefined;
  return new Promise((resolvePromise, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: step.path,
        method: step.method ?? 'GET',
        agent: false,
        headers: {
          ...(cookie ? { cookie } : {}),
          ...(step.referer ? { referer: step.referer } : {}),
          ...(body
            ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) }
            : {}),
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolvePromise({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            headers: res.headers,
          }),
        );
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`${step.method ?? 'GET'} ${step.path} timed out`)));
    req.end(body);
  });
}

/** Runs `script` as one client against `target` ({ port(), failover() }); returns the transcript. */
export async function runScript(script, target) {
  const out = [];
  let cookie;
  const history = [];
  for (const step of script) {
    if (step.failover) await target.failover();
    if (step.fresh) cookie = undefined;
    history.push(cookie);
    const sent = step.oldCookieOf !== undefined ? history[step.oldCookieOf] : cookie;
    const res = await request(target.port(), step, sent);
    const lines = (res.headers['set-cookie'] ?? []).filter((l) => l.startsWith(`${COOKIE}=`));
    let rec = null;
    if (lines.length > 1) rec = { error: `${lines.length} session cookies: ${lines.join(' | ')}` };
    else if (lines.length === 1) {
      const date = Date.parse(res.headers.date ?? '') || Date.now();
      const previous = sent === undefined ? undefined : idOf(sent.slice(COOKIE.length + 1));
      const r = cookieRecord(lines[0], date, previous);
      rec = r.rec;
      cookie = `${COOKIE}=${r.value}`;
    }
    out.push({
      status: res.status,
      type: res.headers['content-type'] ?? null,
      location: res.headers.location ?? null,
      body: res.body,
      cookie: rec,
    });
  }
  return out;
}

/** What (a) must show (the script's own claims); the first unmet one, or null. */
export function unmetExpectation(script, transcript) {
  for (let i = 0; i < script.length; i++) {
    const e = script[i].expect;
    const t = transcript[i];
    if (e === undefined) continue;
    const where = `step ${i} (${script[i].say})`;
    if (e.status !== undefined && t.status !== e.status) return `${where}: status ${t.status}, expected ${e.status}`;
    if (e.body !== undefined && !t.body.includes(e.body)) return `${where}: body lacks ${JSON.stringify(e.body)}`;
    if (e.notBody !== undefined && t.body.includes(e.notBody)) return `${where}: body has ${JSON.stringify(e.notBody)}`;
    if (e.cookie === 'none' && t.cookie !== null) return `${where}: a cookie was set`;
    if (e.cookie === 'new' && t.cookie?.newId !== true) return `${where}: no cookie with a new id`;
  }
  return null;
}

/**
 * The first difference of `actual` from `expected` ((a)), or null. With `reissue` ((b)): at a
 * failover step where (a) sent no cookie, (b) may re-issue the client's cookie (same id), with
 * the attributes of the cookie (a) last set.
 */
export function firstDifference(script, expected, actual, reissue, notes) {
  let last = null;
  for (let i = 0; i < script.length; i++) {
    const step = script[i];
    const where = `step ${i} ${step.method ?? 'GET'} ${step.path} (${step.say})`;
    const ea = expected[i];
    const eb = { ...actual[i] };
    if (reissue && step.failover && ea.cookie === null && eb.cookie !== null && eb.cookie.newId === false) {
      if (last === null || !isDeepStrictEqual(eb.cookie.attrs, last.attrs))
        return `${where}: the cookie re-issued at failover has ${JSON.stringify(eb.cookie.attrs)}, the client's cookie had ${JSON.stringify(last?.attrs ?? null)}`;
      notes.push(`step ${i}: cookie re-issued at failover, same id and attributes (allowed)`);
      eb.cookie = null;
    }
    if (ea.cookie !== null) last = ea.cookie;
    for (const key of ['status', 'type', 'location', 'body', 'cookie'])
      if (!isDeepStrictEqual(ea[key], eb[key]))
        return `${where}: ${key}\n      expected (a): ${JSON.stringify(ea[key])}\n      got:          ${JSON.stringify(eb[key])}`;
  }
  return null;
}
