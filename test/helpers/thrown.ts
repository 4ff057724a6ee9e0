/** What `fn` throws, or undefined when it returns (for tests that inspect the error itself). */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}
