/**
 * What a session manager gives the protocols it is built of: the host of ownership.ts (ACQUIRE,
 * GRANT, fencing) and of copies.ts (the live messages applied to this node's copies). Built once
 * per manager from its parts; parts that exist only later in its constructor are read lazily.
 */
import type { EventEmitter } from 'node:events';
import type { Member } from '../channel/types.js';
import type { SessionConfig } from '../config/session-config.js';
import type { Logger } from '../core/logger.js';
import type { CopiesHost } from './copies.js';
import type { Counter, Refusals } from './counters.js';
import type { Expiry } from './expiry.js';
import { fence } from './fencing.js';
import type { Inbound } from './inbound.js';
import { notifyAttribute, reportConflict, type SessionManagerEvents } from './manager-events.js';
import type { Refused } from './message-readers.js';
import type { Outbound } from './outbound.js';
import type { Ownership, OwnershipHost } from './ownership.js';
import type { Session } from './session.js';

/** The manager itself, as its hosts see it. */
export interface HostedManager extends EventEmitter<SessionManagerEvents> {
  /** This node's member id (exists once the channel started: read when used). */
  readonly localId: string;
  readonly contextName: string;
  readonly config: SessionConfig;
  readonly sessions: Map<string, Session>;
  replicate(s: Session): Promise<void> | undefined;
}

/** The manager's parts and policy hooks the hosts call. */
export interface HostParts {
  readonly counters: Record<Counter, number>;
  readonly refusals: Refusals;
  readonly out: Outbound;
  readonly logger: Logger;
  members(): Member[];
  ownership(): Ownership | undefined;
  expiry(): Expiry;
  inbound(): Inbound;
  /** Policy hooks (DeltaManager's protected methods). */
  movedTo(id: string): string | undefined;
  takingOver(id: string): Promise<unknown> | undefined;
  handingOver(s: Session, to: Member): void;
}

/** The host of the ownership protocol (ownership.ts). */
export function ownershipHost(manager: HostedManager, p: HostParts): OwnershipHost {
  return {
    // A getter: the channel's local member exists only once it started.
    get localId() {
      return manager.localId;
    },
    contextName: manager.contextName,
    timeoutMs: manager.config.ownershipTimeoutMs,
    members: () => p.members(),
    session: (id) => manager.sessions.get(id),
    movedTo: (id) => p.movedTo(id),
    takingOver: (id) => p.takingOver(id),
    flush: (s, to) => {
      if (s.dirty !== undefined || s.maxInactiveDirty || !s.announced) manager.replicate(s);
      p.handingOver(s, to);
    },
    post: (to, message, onError) => {
      p.out.flush(); // a hand-over follows the changes it hands over
      p.out.post(to, message, onError);
    },
    count: (counter) => {
      p.counters[counter]++;
    },
    refuse: (counter, from, why) => p.refusals.refuse(counter, from, why),
    fence: (s, owner) => {
      // Before this node serves it: the notice precedes its changes on every connection.
      const members = p.members();
      const message = fence(s, manager.contextName, owner);
      if (members.length > 0) void p.out.send(members, message, false);
    },
  };
}

/** The host of the live messages applied to this node's copies (copies.ts). */
export function copiesHost(manager: HostedManager, p: HostParts): CopiesHost {
  return {
    // Getters: the channel's local member exists only once it started; config may be replaced.
    get localId() {
      return manager.localId;
    },
    get notify() {
      return manager.config.notifyListenersOnReplication;
    },
    contextName: manager.contextName,
    config: manager.config,
    conflict: (s, name, local, remote, incomingWins) =>
      reportConflict(manager, p.counters, p.logger, s, name, local, remote, incomingWins),
    changed: (s, name, kind, a) => notifyAttribute(manager, s, name, kind, a, true),
    stale: () => {
      p.counters.staleDeltas++;
    },
    copied: (s) => {
      if (manager.config.notifyListenersOnReplication && manager.listenerCount('sessionCreated') > 0)
        manager.emit('sessionCreated', s, true);
    },
    ended: (s, reason) => p.expiry().end(s, reason, false, true),
    handOver: (s) => p.ownership()?.handOver(s),
    ok: <T>(r: T | Refused, from: Member): r is T => p.inbound().ok(r, from),
    malformed: (from, why) => p.inbound().malformed(from, why),
  };
}
