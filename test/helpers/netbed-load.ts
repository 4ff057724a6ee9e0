/**
 * Light write load on a test bed: clients, each with its own session cookie, increment the
 * counter example (`/app/counter`) in a loop. Each request goes to the first node of
 * `targets(client)`; a request that fails (no answer, a connection error, a non-200 status) is
 * recorded with its node and time and retried on the next node of the list, as a client behind a
 * failing-over balancer would. Every answered write must continue its client's count (+1).
 */
import { countOf, type NetBed } from './netbed.js';
import { waitFor } from './wait.js';

export interface LoadFailure {
  client: number;
  k: number;
  /** When the request was sent. */
  sentAt: number;
  at: number;
  error: string;
}

export class WriteLoad {
  readonly counts: number[];
  readonly cookies: (string | undefined)[];
  readonly failures: LoadFailure[] = [];
  /** Writes whose count was not the previous one + 1 (lost or doubled increments, a lost session). */
  readonly broken: string[] = [];
  /** Writes no node answered. */
  readonly unanswered: string[] = [];
  ok = 0;
  #stopped = false;
  /** Requests under way per node. */
  readonly #inFlight = new Map<number, number>();
  readonly #loops: Promise<void>[] = [];

  constructor(
    readonly bed: NetBed,
    clients: number,
    readonly targets: (client: number) => number[],
  ) {
    this.counts = Array.from({ length: clients }, () => 0);
    this.cookies = Array.from({ length: clients }, () => undefined);
    for (let c = 0; c < clients; c++) this.#loops.push(this.#loop(c));
  }

  async #loop(c: number): Promise<void> {
    while (!this.#stopped) {
      let done = false;
      for (const k of this.targets(c)) {
        const sentAt = Date.now();
        this.#inFlight.set(k, (this.#inFlight.get(k) ?? 0) + 1);
        try {
          const res = await this.bed.get(k, '/app/counter', this.cookies[c], 5_000);
          if (res.status !== 200) throw new Error(`status ${res.status}: ${res.body.slice(0, 80)}`);
          this.cookies[c] ??= res.session;
          const n = countOf(res.body);
          if (n !== this.counts[c]! + 1) this.broken.push(`client ${c} on h${k}: count ${n} after ${this.counts[c]}`);
          this.counts[c] = n;
          this.ok++;
          done = true;
          break;
        } catch (err) {
          this.failures.push({ client: c, k, sentAt, at: Date.now(), error: (err as Error).message });
        } finally {
          this.#inFlight.set(k, this.#inFlight.get(k)! - 1);
        }
      }
      if (!done) this.unanswered.push(`client ${c}: no node answered (tried ${this.targets(c).join(',')})`);
      // Light load: a short pause between writes (an event-loop turn, not a wait for a state).
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Requests to node `k` under way now (a test takes a node out of `targets`, then waits for 0 before stopping it). */
  inFlightTo(k: number): number {
    return this.#inFlight.get(k) ?? 0;
  }

  /** Waits until every client has written `n` more times. */
  async progress(n: number, what: string, timeoutMs = 10_000): Promise<void> {
    const base = [...this.counts];
    await waitFor(() => this.counts.every((x, i) => x >= base[i]! + n), what, { timeoutMs, intervalMs: 20 });
  }

  /** Stops the loops and waits for the requests in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
  }
}
