// Command-line options of the benchmark harnesses: `--name` or `--name=value`, only known names.
/**
 * Parses process.argv against `known` option names; prints `usage` for --help and exits 2 on an
 * unknown option. Returns the options and `num(name, default, { positive })` for numeric ones.
 */
export function parseOptions(known, usage) {
  const args = {};
  for (const a of process.argv.slice(2)) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
    if (!m || !known.includes(m[1])) {
      console.error(`unknown argument ${a} (known: ${known.map((k) => `--${k}`).join(' ')})`);
      process.exit(2);
    }
    args[m[1]] = m[2] ?? true;
  }
  if (args.help) {
    console.log(usage);
    process.exit(0);
  }
  const num = (k, d, { positive = false } = {}) => {
    if (args[k] === undefined) return d;
    const v = Number(args[k]);
    if (!Number.isFinite(v) || v < 0 || (positive && v === 0)) {
      console.error(`--${k} must be a ${positive ? 'positive number' : 'number >= 0'}`);
      process.exit(2);
    }
    return v;
  };
  return { args, num };
}
