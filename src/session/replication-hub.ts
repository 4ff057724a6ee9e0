/**
 * Connects session managers to one channel: advertises the contexts this node serves in its
 * member payload, routes incoming messages to the manager of their context, and answers a state
 * request for a context this node does not serve at once (so the asker does not wait), and turns
 * a member back after a silence into a merge both ways (rejoin-merge.ts).
 */
import type { ReceivedMessage } from '../channel/channel.js';
import type { Member } from '../channel/types.js';
import { type DecodeOptions, decode } from '../codec/value-codec.js';
import { type PlacementConfig, resolvePlacementConfig } from '../config/placement-config.js';
import { SendFlag } from '../config/send-options.js';
import type { Logger } from '../core/logger.js';
import { Msg } from './messages.js';
import type { PlacementMember } from './placement.js';
import { type RejoinCounters, RejoinMerges } from './rejoin-merge.js';
import type { SessionChannel } from './session-channel.js';

/** What the hub needs from a manager. */
export interface HubManager {
  readonly contextName: string;
  /** Handles a message for this context; return a promise to hold a synchronous acknowledgement. */
  receive(message: unknown[], from: Member): void | Promise<void>;
  memberAdded?(member: Member): void;
  memberRemoved?(member: Member): void;
  /**
   * Merges `member`'s sessions into this node's in the background (late: found after this node
   * was ready; rejoined: back after a pause or partition). False when none was started.
   */
  mergeWith?(member: Member, why: 'late' | 'rejoined'): boolean;
  /** The end of an event-loop turn it asked for with {@link ReplicationHub.queueTurn}: send what it queued. */
  endTurn?(): void;
}

/**
 * Session messages carry attribute values as embedded encodings; the managers decode every one
 * of them or copy it into memory of its own (session.ts receiveValue/storeReceived), so they can
 * be views into the message instead of copies.
 */
const BYTE_VIEWS: DecodeOptions = { byteViews: true };

/** The member payload clowder nodes advertise. */
export interface NodePayload {
  contexts: string[];
  /** The machine the node runs on, for backup placement (absent from older nodes). */
  host?: string;
  /** Its failure zone, if configured. */
  zone?: string;
  /** Its HTTP port (at its receiver's host), for owner forwarding; absent when it forwards nothing to it. */
  httpPort?: number;
}

export class ReplicationHub {
  readonly #managers = new Map<string, HubManager>();
  readonly #membersFor = new Map<string, Member[]>();
  #dropped = 0;

  constructor(
    readonly channel: SessionChannel,
    private readonly logger: Logger,
    /** Where this node runs, advertised for backup placement. */
    readonly placement: PlacementConfig = resolvePlacementConfig(),
  ) {
    this.#rejoined = new RejoinMerges(this, this.#managers, logger);
    channel.onMessage((msg) => this.#onMessage(msg));
    channel.on('memberAdded', (m) => {
      this.#membersFor.clear();
      for (const mgr of this.#managers.values()) mgr.memberAdded?.(m);
    });
    channel.on('memberRemoved', (m) => {
      this.#membersFor.clear();
      for (const mgr of this.#managers.values()) mgr.memberRemoved?.(m);
    });
    channel.on('memberRejoined', (m) => this.#rejoined.noticed(m));
  }

  /** Two-way merges with members back after a silence (see rejoin-merge.ts). */
  readonly #rejoined: RejoinMerges;

  /** Rejoin merges: noticed here, asked for by the member, and refused requests. */
  get rejoins(): Readonly<RejoinCounters> {
    return this.#rejoined.counters;
  }

  /** Registers a manager; call before the channel starts so peers see the context from the first heartbeat. */
  register(manager: HubManager): void {
    if (this.#managers.has(manager.contextName)) throw new Error(`context ${manager.contextName} is registered twice`);
    this.#managers.set(manager.contextName, manager);
    this.channel.setPayload(this.#payload());
  }

  #payload(): NodePayload {
    const p: NodePayload = { contexts: [...this.#managers.keys()], host: this.placement.host };
    if (this.placement.zone !== undefined) p.zone = this.placement.zone;
    if (this.#httpPort !== undefined) p.httpPort = this.#httpPort;
    return p;
  }

  #httpPort: number | undefined;

  /** Advertises this node's HTTP port (owner forwarding); call before the channel starts. */
  advertiseHttpPort(port: number): void {
    this.#httpPort = port;
    this.channel.setPayload(this.#payload());
  }

  unregister(manager: HubManager): void {
    this.#managers.delete(manager.contextName);
  }

  /** Members that serve `context` (cached until membership changes). */
  membersFor(context: string): Member[] {
    let list = this.#membersFor.get(context);
    if (list === undefined) {
      list = this.channel.members().filter((m) => servesContext(m, context));
      this.#membersFor.set(context, list);
    }
    return list;
  }

  /** Managers whose endTurn() runs at the end of this turn. */
  readonly #turnManagers: HubManager[] = [];
  #turnScheduled = false;
  #written: Promise<void> | undefined;
  #resolveWritten: (() => void) | undefined;
  #handled: Promise<void> | undefined;
  #resolveHandled: (() => void) | undefined;

  /**
   * Calls `manager.endTurn()` at the end of this event-loop turn, before the turn's messages are
   * written: a manager sends the changes of every request that ended during the turn together.
   */
  queueTurn(manager: HubManager): void {
    if (!this.#turnManagers.includes(manager)) this.#turnManagers.push(manager);
    this.#scheduleTurn();
  }

  /**
   * Resolves at the end of this event-loop turn, once every message queued so far was handed to
   * its socket. A response that ends with `batchResponses` waits for it: its bytes then follow
   * the change it acknowledges on the wire (a client that takes the response to another node at
   * once finds the change there), and the turn's responses go out together. One promise, one
   * immediate and one write per peer for all requests of a turn, whatever the contexts.
   */
  turnWritten(): Promise<void> {
    this.#scheduleTurn();
    return (this.#written ??= new Promise<void>((resolve) => {
      this.#resolveWritten = resolve;
    }));
  }

  /**
   * Resolves once the input that arrived together with the current I/O has been handled: at the
   * end of this event-loop turn, after every socket the kernel reported ready with this one was
   * read. A read served from a copy waits for it: when the owner's change and the client's next
   * request arrive together, the change is applied first, whichever socket the kernel names first.
   */
  inputHandled(): Promise<void> {
    this.#scheduleTurn();
    return (this.#handled ??= new Promise<void>((resolve) => {
      this.#resolveHandled = resolve;
    }));
  }

  #scheduleTurn(): void {
    if (this.#turnScheduled) return;
    this.#turnScheduled = true;
    setImmediate(this.#endTurn);
  }

  readonly #endTurn = (): void => {
    this.#turnScheduled = false;
    const handled = this.#resolveHandled;
    this.#handled = undefined;
    this.#resolveHandled = undefined;
    handled?.();
    const managers = this.#turnManagers;
    for (let i = 0; i < managers.length; i++) {
      try {
        managers[i]!.endTurn?.();
      } catch (err) {
        // endTurn counts its own failures; this is a bug, and must not keep the turn's responses back.
        this.logger.error({ err, context: managers[i]!.contextName }, "sending the turn's changes failed");
      }
    }
    managers.length = 0;
    this.channel.flushNow();
    const resolve = this.#resolveWritten;
    this.#written = undefined;
    this.#resolveWritten = undefined;
    resolve?.();
  };

  /** Messages dropped because they were malformed or for no context here. */
  get dropped(): number {
    return this.#dropped;
  }

  #onMessage(msg: ReceivedMessage): void | Promise<void> {
    if (msg.options & SendFlag.BYTE_MESSAGE) {
      this.#drop(msg.from, 'not a session message');
      return;
    }
    let value: unknown;
    try {
      value = decode(msg.bytes, undefined, BYTE_VIEWS);
    } catch (err) {
      this.#drop(msg.from, (err as Error).message);
      return;
    }
    if (!Array.isArray(value) || typeof value[0] !== 'number' || typeof value[1] !== 'string') {
      this.#drop(msg.from, 'not a session message');
      return;
    }
    if (value[0] === Msg.MERGE_REQUEST) {
      this.#rejoined.asked(value[1], msg.from);
      return;
    }
    const manager = this.#managers.get(value[1]);
    if (manager === undefined) {
      if (value[0] === Msg.STATE_REQUEST) {
        void this.channel.send(msg.from, [Msg.STATE_NONE, value[1], value[2]]).catch(() => {});
      } else this.#drop(msg.from, `no context ${value[1]} here`);
      return;
    }
    return manager.receive(value, msg.from);
  }

  #drop(from: Member, why: string): void {
    if (this.#dropped++ % 100 === 0)
      this.logger.warn({ from: from.name, why, dropped: this.#dropped }, 'dropped a session message');
  }
}

/** Whether member `m` advertises `context`. */
export function servesContext(m: Member, context: string): boolean {
  const p = m.payload as Partial<NodePayload> | undefined;
  return p !== undefined && p !== null && Array.isArray(p.contexts) && p.contexts.includes(context);
}

/** The HTTP port member `m` advertises for owner forwarding (a peer's payload is untrusted), or undefined. */
export function httpPortOf(m: Member): number | undefined {
  const port = (m.payload as Partial<NodePayload> | undefined)?.httpPort;
  return typeof port === 'number' && Number.isInteger(port) && port > 0 && port <= 65535 ? port : undefined;
}

const PLACEMENT_NAME = /^[\x21-\x7e]{1,253}$/;

/**
 * Member `m` as backup placement sees it: its advertised host and zone when well-formed (a peer's
 * payload is untrusted), else its receiver address as the host and no zone.
 */
export function placementMemberOf(m: Member): PlacementMember {
  const p = m.payload as Partial<NodePayload> | undefined;
  const host = typeof p?.host === 'string' && PLACEMENT_NAME.test(p.host) ? p.host : m.host;
  const zone = typeof p?.zone === 'string' && p.zone.length <= 64 && PLACEMENT_NAME.test(p.zone) ? p.zone : undefined;
  return { id: m.id, host, zone };
}
