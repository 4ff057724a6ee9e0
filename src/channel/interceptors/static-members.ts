/**
 * Static members next to the membership service (Tomcat's StaticMembershipInterceptor): the
 * listed peers are pinged over TCP and reported as members from this position of the stack, in
 * addition to whatever multicast discovers. Place it above the failure detector.
 */
import type { StaticMembersConfig } from '../../config/channel-config.js';
import { StaticMembership } from '../../membership/static.js';
import type { Interceptor } from '../types.js';

export function staticMembers(config: StaticMembersConfig): Interceptor {
  const service = new StaticMembership(config);
  return {
    name: 'staticMembers',
    async start(ctx) {
      await service.start(ctx.membershipContext());
    },
    stop: () => service.stop(),
    memberLeft(id) {
      service.left(id);
    },
    stats: () => ({ members: service.members().length, ...service.stats() }),
  };
}
