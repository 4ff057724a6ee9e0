/** Built-in interceptors, and the factory that turns config entries into a stack. */
import type { BuiltinInterceptorConfig, ChannelConfig } from '../../config/channel-config.js';
import type { Interceptor } from '../types.js';
import { domainFilter } from './domain-filter.js';
import { failureDetector } from './failure-detector.js';
import { fragmentation } from './fragmentation.js';
import { messageDispatch } from './message-dispatch.js';
import { staticMembers } from './static-members.js';
import { throughput } from './throughput.js';

export { domainFilter, failureDetector, fragmentation, messageDispatch, staticMembers, throughput };

function builtin(c: BuiltinInterceptorConfig): Interceptor {
  switch (c.type) {
    case 'failureDetector':
      return failureDetector(c);
    case 'messageDispatch':
      return messageDispatch(c);
    case 'throughput':
      return throughput(c);
    case 'domainFilter':
      return domainFilter(c);
    case 'fragmentation':
      return fragmentation(c);
    case 'staticMembers':
      return staticMembers(c);
  }
}

/** The interceptor stack for `config`, top first: built-ins are created, custom objects used as given. */
export function createInterceptors(config: ChannelConfig): Interceptor[] {
  return config.interceptors.map((entry) =>
    'type' in entry ? builtin(entry as BuiltinInterceptorConfig) : (entry as Interceptor),
  );
}
