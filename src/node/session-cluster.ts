/**
 * Library mode, for people who run their own server: one factory gives a session manager on a
 * cluster channel, and both adapters over it — Express/Connect middleware and a node:http
 * request listener.
 *
 *   const sessions = createSessions({ channel: { name: 'a', membership: … }, sessions: { contextPath: '/' } });
 *   await sessions.start();                  // joins, takes the cluster's sessions
 *   app.use(sessions.middleware());          // Express
 *   http.createServer(sessions.handler(app)) // or plain node:http
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Channel, type ChannelStats, createChannel } from '../channel/channel.js';
import type { ChannelConfigInput } from '../config/channel-config.js';
import { type PlacementConfigInput, resolvePlacementConfig } from '../config/placement-config.js';
import { resolveSessionConfig, type SessionConfigInput } from '../config/session-config.js';
import { checkCreateSessionsOptions } from '../config/top-level-options.js';
import { createLogger, type Logger } from '../core/logger.js';
import { createRequestListener, type RequestListener, sessionMiddleware } from '../http/adapters.js';
import { createManager } from '../session/create-manager.js';
import type { DeltaManager, ManagerStats } from '../session/delta-manager.js';
import { ReplicationHub } from '../session/replication-hub.js';

export interface SessionsOptions {
  channel?: ChannelConfigInput;
  sessions?: SessionConfigInput;
  /** Where this node runs (host, zone), for the BackupManager's anti-affinity. */
  placement?: PlacementConfigInput;
}

export class SessionCluster {
  readonly channel: Channel;
  readonly manager: DeltaManager;

  constructor(options: SessionsOptions = {}, deps: { logger?: Logger } = {}) {
    // Only channel and sessions: `createSessions({ secret })` or a session option at the top is
    // refused with a hint, not silently ignored.
    checkCreateSessionsOptions(options);
    const logger = deps.logger ?? createLogger();
    const config = resolveSessionConfig(options.sessions ?? {}, 'sessions');
    this.channel = createChannel(options.channel ?? {}, { logger });
    this.manager = createManager(
      config,
      new ReplicationHub(this.channel, logger, resolvePlacementConfig(options.placement ?? {}, 'placement')),
      logger.child({ context: config.contextPath }),
    );
  }

  /** Joins the cluster and takes the other nodes' sessions; serve only after this resolves. */
  async start(): Promise<void> {
    await this.channel.start();
    await this.channel.settled();
    await this.manager.start();
  }

  /** Leaves the cluster gracefully (the other nodes keep the sessions). */
  async stop(): Promise<void> {
    await this.manager.stop();
    await this.channel.stop();
  }

  /**
   * Counters for monitoring: `ready` (start() completed), the channel's (transport, membership,
   * interceptors) and the application's sessions (a BackupManager adds its own: `manager` says which).
   */
  stats(): { ready: boolean; channel: ChannelStats; sessions: ManagerStats } {
    return { ready: this.manager.ready, channel: this.channel.stats(), sessions: this.manager.stats() };
  }

  /** Express/Connect middleware providing `req.session`. */
  middleware(): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
    return sessionMiddleware(this.manager);
  }

  /** A node:http request listener running `app` at the manager's context path. */
  handler(app: RequestListener): (req: IncomingMessage, res: ServerResponse) => void {
    return createRequestListener([{ contextPath: this.manager.config.contextPath, manager: this.manager, app }]);
  }
}

/** Creates sessions on a cluster channel (validated now; nothing starts until start()). */
export function createSessions(options?: SessionsOptions, deps?: { logger?: Logger }): SessionCluster {
  return new SessionCluster(options, deps);
}
