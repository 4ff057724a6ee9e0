/**
 * With a static member list, every member is expected at its listed address. A receiver that
 * autoBind moved off its configured port (it was taken) is either where no other member looks
 * (not in the list) or in the place of another listed member (which then moves or fails); a
 * receiver configured outside the list is where no one looks. They never connect to it there:
 * say so loudly, with the fix. DNS membership with A/AAAA records looks for every member on one
 * port, so a receiver moved off it is not found either.
 */
import type { ChannelConfig } from '../config/channel-config.js';
import { isLoopback, parseHostPort } from '../core/net.js';

const WILDCARD = new Set(['0.0.0.0', '::', '[::]']);

/** The warning for a receiver bound at `host:port` that is not where the static member list expects it; else undefined. */
export function unlistedReceiverWarning(config: ChannelConfig, host: string, port: number): string | undefined {
  const m = config.membership;
  if (m.type === 'dns') return dnsPortWarning(m.name, m.port, config.receiver.port, host, port);
  if (m.type !== 'static') return undefined;
  const listed = m.members.some((entry) => {
    const peer = parseHostPort(entry);
    if (peer === undefined || peer.port !== port) return false;
    // A wildcard bind answers on every address of this host.
    return peer.host === host || WILDCARD.has(host) || (isLoopback(peer.host) && isLoopback(host));
  });
  const configured = config.receiver.port;
  const moved = configured !== 0 && configured !== port;
  if (listed && !moved) return undefined;
  const where = moved
    ? `receiver.port ${configured} was taken, so autoBind moved this node's receiver to ${host}:${port}`
    : `this node's receiver is bound at ${host}:${port}`;
  const problem = listed
    ? 'the entry membership.members lists for another member (which will then be moved or fail)'
    : `not in membership.members (${m.members.join(', ')}): the other members will not connect to it there`;
  return (
    `${where}, ${listed ? '' : 'which is '}${problem}. Fix: bind this node's own entry (free port ` +
    `${configured} and restart, or set receiver.port / --cluster-port to it), or list ${host}:${port}; ` +
    'receiver.autoBind: 1 makes a taken port fail the start instead of moving'
  );
}

/**
 * DNS membership with A/AAAA records: the others look for every member at membership.port (by
 * default receiver.port). A receiver that autoBind moved elsewhere is not found there.
 */
function dnsPortWarning(
  name: string,
  expected: number | undefined,
  configured: number,
  host: string,
  port: number,
): string | undefined {
  if (name.startsWith('_') || expected === undefined || port === expected) return undefined;
  const why =
    configured !== 0 && configured !== port
      ? `receiver.port ${configured} was taken, so autoBind moved it`
      : 'it is bound';
  return (
    `this node's receiver is at ${host}:${port} (${why}), but DNS membership looks for the members of ${name} ` +
    `on port ${expected}: the other members will not find it. Fix: free port ${expected} and restart, ` +
    'or set receiver.autoBind: 1 so that a taken port fails the start instead of moving'
  );
}
