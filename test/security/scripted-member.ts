/**
 * A scripted member for the session attack tests: a bare channel in the test cluster (so it holds
 * the cluster's key, as an attacker that is a member would) that advertises /app and sends exactly
 * what the test makes it send, over the real connections. `handled(node)` proves that the node
 * has handled everything this member sent it before: the member's messages to a node travel on one
 * ordered connection, and the node answers a state request for a context it does not serve at once.
 */
import { randomBytes } from 'node:crypto';
import { type Channel, type ClusterNode, createChannel, type Member, silentLogger } from '../../src/index.js';
import { Msg } from '../../src/session/messages.js';
import { managerOf, type TestCluster } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

export class ScriptedMember {
  /** What it received, decoded, in order (state requests are answered, not kept). */
  readonly inbox: unknown[][] = [];
  #probes = 0;

  private constructor(readonly channel: Channel) {}

  /** Starts a member named `name` in `cluster`, advertising /app, and waits until every node sees it. */
  static async join(cluster: TestCluster, name: string): Promise<ScriptedMember> {
    const channel = createChannel({ name, ...cluster.options(name).cluster }, { logger: silentLogger });
    const x = new ScriptedMember(channel);
    channel.setPayload({ contexts: ['/app'] });
    channel.onMessage((msg) => {
      const m = msg.value as unknown[];
      // A node that finds this member late asks it for its sessions: it has none.
      if (m[0] === Msg.STATE_REQUEST) void channel.send(msg.from, [Msg.STATE_NONE, m[1], m[2]]).catch(() => {});
      else x.inbox.push(m);
    });
    await channel.start();
    for (const node of cluster.nodes) {
      await waitFor(
        () => node.channel.members().some((m) => m.id === channel.local.id) && x.member(node) !== undefined,
        `${node.name} and ${name} to see each other`,
      );
    }
    return x;
  }

  get id(): string {
    return this.channel.local.id;
  }

  /** `node` as this member lists it. */
  member(node: ClusterNode): Member {
    return this.channel.members().find((m) => m.id === node.channel.local.id)!;
  }

  /** Sends `message` to `node`, acknowledged once the node received it. */
  async send(node: ClusterNode, message: unknown[]): Promise<void> {
    await this.channel.send(this.member(node), message);
  }

  /** Resolves once `node` has handled every message this member sent it before. */
  async handled(node: ClusterNode): Promise<void> {
    const tag = `probe-${++this.#probes}`;
    await this.send(node, [Msg.STATE_REQUEST, '/nothing-here', tag]);
    await waitFor(
      () => this.inbox.some((m) => m[0] === Msg.STATE_NONE && m[2] === tag),
      `${node.name} to answer ${tag}`,
    );
  }

  /** The first received message `match` accepts, once it is there. */
  async received(match: (m: unknown[]) => boolean, what: string): Promise<unknown[]> {
    return (await waitFor(() => this.inbox.find(match), what))!;
  }

  async stop(): Promise<void> {
    await this.channel.stop();
  }
}

/** A fresh, well-formed session id (no node holds it). */
export function freshId(): string {
  return randomBytes(16).toString('hex').toUpperCase();
}

/** A counter of `node`'s /app manager's stats. */
export function counter(node: ClusterNode, name: string): number {
  return (managerOf(node).stats() as unknown as Record<string, number>)[name] ?? Number.NaN;
}
