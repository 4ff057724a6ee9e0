/**
 * Domain filter (Tomcat's DomainFilterInterceptor): messages and members from another domain
 * (cluster partition) are dropped and counted, logged every `logEvery` drops.
 */
import type { DomainFilterConfig } from '../../config/channel-config.js';
import type { Interceptor, InterceptorContext } from '../types.js';

export function domainFilter(config: DomainFilterConfig): Interceptor {
  let ctx: InterceptorContext;
  let domain = '';
  const c = { droppedMessages: 0, droppedMembers: 0 };
  function dropped(what: 'message' | 'member', from: string, theirs: string): void {
    const n = what === 'message' ? ++c.droppedMessages : ++c.droppedMembers;
    if (n % config.logEvery === 1 || config.logEvery === 1) {
      ctx.logger.warn({ from, domain: theirs, ours: domain, dropped: n }, `dropped a ${what} from another domain`);
    }
  }
  return {
    name: 'domainFilter',
    start(x) {
      ctx = x;
      domain = x.config.domain;
    },
    receive(msg, next) {
      if (msg.from.domain === domain) return next(msg);
      dropped('message', msg.from.name, msg.from.domain);
    },
    memberAdded(member, next) {
      if (member.domain === domain) next(member);
      else dropped('member', member.name, member.domain);
    },
    memberRemoved(member, reason, next) {
      if (member.domain === domain) next(member, reason);
    },
    memberSuspected(member, error, next) {
      if (member.domain === domain) next(member, error);
    },
    stats: () => ({ ...c }),
  };
}
