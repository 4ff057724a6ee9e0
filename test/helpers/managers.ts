/**
 * The session managers every manager-agnostic test runs against: `cli` for `clowder start`
 * processes, `sessions` for in-process nodes (merged into the nodes' session defaults): the
 * balancer end-to-end tests and the route re-homing test run for each.
 */
export interface ManagerUnderTest {
  readonly name: string;
  readonly cli: readonly string[];
  readonly sessions: Readonly<Record<string, unknown>>;
}

export const MANAGERS: readonly ManagerUnderTest[] = [
  { name: 'delta', cli: [], sessions: {} },
  { name: 'backup', cli: ['--manager', 'backup', '--backups', '1'], sessions: { manager: 'backup', backups: 1 } },
];
