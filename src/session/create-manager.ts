/** The session manager a context's `sessions.manager` selects (both can serve different contexts of one node). */
import type { SessionConfig } from '../config/session-config.js';
import type { Logger } from '../core/logger.js';
import { BackupManager } from './backup-manager.js';
import { DeltaManager } from './delta-manager.js';
import type { ReplicationHub } from './replication-hub.js';

/**
 * A DeltaManager (`manager: delta`) or a BackupManager (`manager: backup`) for one context.
 * `logger` is the context's: bound to it by the caller (`logger.child({ context })`, as the node
 * and createSessions do), so the manager's lines name the context once, without adding it.
 */
export function createManager(
  config: SessionConfig,
  hub: ReplicationHub,
  logger: Logger,
  distributable = true,
): DeltaManager {
  return config.manager === 'backup'
    ? new BackupManager(config, hub, logger, distributable)
    : new DeltaManager(config, hub, logger, distributable);
}
