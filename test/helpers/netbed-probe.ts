/**
 * The bed's probe application: the counter example at /app (same paths and bodies), plus what a
 * test needs to account for every write without moving a session:
 * - `GET /app/peek?id=<id>` reads this node's copy of a session as JSON ({@link Peek}) straight
 *   from its manager: no cookie, no request on the session, no ownership change, nothing sent;
 * - `GET /app/members` this node's protocol versions and those of the members it sees;
 * - every `conflict` event of the manager is written to stderr as a JSON line
 *   (`{"msg":"conflict",…}`), which the bed's log reader collects with the node's log lines.
 * Written into the bed's directory by {@link writeProbeApp}; pass its path as `app` to NetBed.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { NetBed } from './netbed.js';
import { COUNTER_APP } from './node-process.js';

/** One node's copy of a session, as `/app/peek` reads it. */
export interface Peek {
  /** The node holds a valid copy. */
  held: boolean;
  /** The id is tombstoned here (invalidated or expired lately). */
  ended: boolean;
  count?: number;
  version?: number;
  /** Stamp of the `count` attribute: version and writer id. */
  countStamp?: [number, string];
}

/** A conflict event as a node reported it. */
export interface ConflictLine {
  sessionId: string;
  attribute: string;
  local: string;
  remote: string;
  winner: string;
  receivedAt: number;
}

const source = (counter: string) => `import counter from ${JSON.stringify(counter)};
export const distributable = true;
let manager;
let node;
export function setup(ctx) {
  manager = ctx.manager;
  node = ctx.node;
  manager.on('conflict', (c) => {
    process.stderr.write(JSON.stringify({ msg: 'conflict', sessionId: c.sessionId, attribute: c.attribute, local: c.local, remote: c.remote, winner: c.winner }) + '\\n');
  });
}
function json(res, v) {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(v));
}
export default function probe(req, res) {
  const url = req.url ?? '/';
  if (url.startsWith('/peek?id=')) {
    const id = decodeURIComponent(url.slice('/peek?id='.length));
    const s = manager.sessions.get(id);
    const ended = manager.endedLately(id);
    if (s === undefined || !s.valid) return json(res, { held: false, ended });
    const a = s.attributes.get('count');
    return json(res, {
      held: true,
      ended,
      count: a === undefined || a.removed ? undefined : s.getAttribute('count'),
      version: s.version,
      countStamp: a === undefined ? undefined : [a.v, a.w],
    });
  }
  if (url === '/members') {
    const local = node.channel.local;
    return json(res, {
      id: local.id,
      name: local.name,
      protocolVersion: local.protocolVersion,
      members: node.channel.members().map((m) => ({ id: m.id, name: m.name, protocolVersion: m.protocolVersion })),
    });
  }
  return counter(req, res);
}
`;

/** Writes the probe app into `dir` and returns its path (the `app` option of NetBed.create). */
export function writeProbeApp(dir: string): string {
  const file = join(dir, 'probe-app.mjs');
  writeFileSync(file, source(pathToFileURL(COUNTER_APP).href));
  return file;
}

/** Node `k`'s copy of session `cookie` (`<id>.<route>` or an id). */
export async function peek(bed: NetBed, k: number, cookie: string): Promise<Peek> {
  const id = cookie.split('.')[0]!;
  const res = await bed.get(k, `/app/peek?id=${encodeURIComponent(id)}`);
  if (res.status !== 200) throw new Error(`h${k} peek: ${res.status} ${res.body}`);
  return JSON.parse(res.body) as Peek;
}

/** Node `k`'s protocol version and the versions of the members it sees, by name. */
export async function versions(
  bed: NetBed,
  k: number,
): Promise<{ id: string; protocolVersion: number; members: Record<string, number> }> {
  const res = await bed.get(k, '/app/members');
  if (res.status !== 200) throw new Error(`h${k} members: ${res.status} ${res.body}`);
  const v = JSON.parse(res.body) as {
    id: string;
    protocolVersion: number;
    members: { name: string; protocolVersion: number }[];
  };
  return {
    id: v.id,
    protocolVersion: v.protocolVersion,
    members: Object.fromEntries(v.members.map((m) => [m.name, m.protocolVersion])),
  };
}

/** The conflict events node `k` reported (every node run of host `k`, replaced ones excluded). */
export function conflictsOf(bed: NetBed, k: number): ConflictLine[] {
  return bed.host(k).node.logs.filter((l) => l.msg === 'conflict') as unknown as ConflictLine[];
}
