/** The membership service a channel config names. */
import type { DnsConfig, MulticastConfig, StaticConfig } from '../config/channel-config.js';
import { DnsMembership } from './dns.js';
import type { MembershipService } from './membership.js';
import { MulticastMembership } from './multicast.js';
import { StaticMembership } from './static.js';

export function createMembership(config: MulticastConfig | StaticConfig | DnsConfig): MembershipService {
  if (config.type === 'multicast') return new MulticastMembership(config);
  if (config.type === 'static') return new StaticMembership(config);
  return new DnsMembership(config);
}
