/**
 * clowder: in-memory HTTP session replication and clustering for Node.js.
 *
 * This entry point exports the channel layer (group communication: membership, transport,
 * interceptors), its configuration, the codec and the error catalogue.
 */
export {
  Channel,
  type ChannelEvents,
  type ChannelStats,
  createChannel,
  type MessageHandler,
  type MessageHandlerOptions,
  type ReceivedMessage,
  type SendOptions,
} from './channel/channel.js';
export {
  domainFilter,
  failureDetector,
  fragmentation,
  messageDispatch,
  staticMembers,
  throughput,
} from './channel/interceptors/index.js';
export type {
  IncomingMessage,
  Interceptor,
  InterceptorContext,
  Member,
  OutgoingMessage,
  RemoveReason,
  Upstream,
} from './channel/types.js';
export * from './codec/index.js';
export type { AdminToken } from './config/admin-token.js';
export {
  type ChannelConfig,
  type ChannelConfigInput,
  DEFAULT_INTERCEPTORS,
  resolveChannelConfig,
} from './config/channel-config.js';
export { type NodeConfig, type NodeConfigInput, resolveNodeConfig } from './config/node-config.js';
export { parseSendOptions, SendFlag, type SendOptionsInput, sendOptionsName } from './config/send-options.js';
export { resolveSessionConfig, type SessionConfig, type SessionConfigInput } from './config/session-config.js';
export type { ProxyTrust, TrustProxyInput } from './config/trust-proxy.js';
export * from './core/errors.js';
export { createLogger, type Logger, silentLogger } from './core/logger.js';
export {
  ClusterRequest,
  ClusterResponse,
  createRequestListener,
  type Mount,
  type RequestListener,
  sessionMiddleware,
} from './http/adapters.js';
export type { SessionCookie } from './http/session-cookie.js';
export type { Callback, RegenerateOptions, SessionApi, SessionHandle } from './http/session-handle.js';
export type { ClowderSession, SessionData } from './http/types.js';

export {
  type AppDefinition,
  type AppSetup,
  ClusterNode,
  type ClusterNodeOptions,
  createClusterNode,
  type StopOptions,
} from './node/cluster-node.js';
export { createSessions, SessionCluster, type SessionsOptions } from './node/session-cluster.js';
export {
  type ConflictInfo,
  DeltaManager,
  type DeltaManagerEvents,
  type DestroyReason,
  type StateTransferStats,
} from './session/delta-manager.js';
export { ReplicationHub } from './session/replication-hub.js';
export type { Session } from './session/session.js';
