/**
 * A receiver that autoBind moved to another port (the configured one was taken), or that was
 * configured outside its own static member list, is not where the other members look for it:
 * they never connect to it, and it may even take the port a listed member expects. Say so loudly.
 */
import type { ChannelConfig } from '../config/channel-config.js';
import { isLoopback, parseHostPort } from '../core/net.js';

const WILDCARD = new Set(['0.0.0.0', '::', '[::]']);

/** The warning for a receiver bound at `host:port` that the static member list does not name; undefined when listed. */
export function unlistedReceiverWarning(config: ChannelConfig, host: string, port: number): string | undefined {
  const m = config.membership;
  if (m.type !== 'static') return undefined;
  const listed = m.members.some((entry) => {
    const peer = parseHostPort(entry);
    if (peer === undefined || peer.port !== port) return false;
    // A wildcard bind answers on every address of this host.
    return peer.host === host || WILDCARD.has(host) || (isLoopback(peer.host) && isLoopback(host));
  });
  if (listed) return undefined;
  const configured = config.receiver.port;
  const moved =
    configured !== 0 && configured !== port
      ? `receiver.port ${configured} was taken, so autoBind moved this node's receiver to ${host}:${port}`
      : `this node's receiver is bound at ${host}:${port}`;
  return (
    `${moved}, which is not in membership.members (${m.members.join(', ')}): the other members will not ` +
    `connect to it there. Fix: bind a listed address (free port ${configured} and restart, or set ` +
    `receiver.port / --cluster-port to this node's entry), list ${host}:${port}, or set receiver.autoBind: 1 ` +
    `to fail at start instead of moving`
  );
}
