/**
 * The session managers every manager-agnostic test runs against: `cli` for `clowder start`
 * processes, `sessions` for in-process nodes (merged into the nodes' session defaults). The
 * BackupManager adds its entry here once it can be selected; the balancer end-to-end tests and
 * the route re-homing test then run for it too.
 */
export interface ManagerUnderTest {
  readonly name: string;
  readonly cli: readonly string[];
  readonly sessions: Readonly<Record<string, unknown>>;
}

export const MANAGERS: readonly ManagerUnderTest[] = [{ name: 'delta', cli: [], sessions: {} }];
