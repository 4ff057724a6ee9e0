// wrk, the HTTP load generator of the http and compare harnesses: run it with the shared
// workload's script, parse its RESULT line.

import { toolVersion, wrkLine } from './machine.mjs';
import { kv, run } from './proc.mjs';

/** How to get wrk, for a harness's precondition message. */
export const WRK_MISSING =
  'wrk (the HTTP load generator) is not installed. Install it, e.g.:\n' +
  '    sudo apt-get update && sudo apt-get install -y wrk      (Debian/Ubuntu)\n' +
  '    brew install wrk                                         (macOS)\n' +
  '  or build it from https://github.com/wg/wrk; then run this again.';

/** wrk's version line, or undefined when it is not installed. */
export function wrkVersion() {
  const v = toolVersion('wrk', ['-v']);
  return v === undefined ? undefined : wrkLine(v);
}

/**
 * `wrk -t<threads> -c<connections> -d<seconds>s --timeout 5s -s <script> http://127.0.0.1:<ports[0]>
 * -- <scriptArgs>`; with more than one port, WRK_PORTS gives thread i the server i mod n. Killed
 * by PID 20 s after its duration. Resolves run()'s { code, stdout, stderr } and `threads`.
 */
export async function runWrk({ ports, threads, connections, seconds, script, scriptArgs }) {
  const argv = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', script];
  argv.push(`http://127.0.0.1:${ports[0]}`, '--', ...scriptArgs.map(String));
  const env = { ...process.env };
  if (ports.length > 1) env.WRK_PORTS = ports.join(',');
  else delete env.WRK_PORTS;
  return { ...(await run('wrk', argv, (seconds + 20) * 1000, env)), threads };
}

/** The script's RESULT line as key=values (+ `line`, and `non2xx` from wrk's own summary); throws without one. */
export function wrkResult(w) {
  const line = w.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`wrk printed no RESULT line (code ${w.code}): ${w.stdout}\n${w.stderr}`);
  const non2xx = Number(/Non-2xx or 3xx responses:\s*(\d+)/.exec(w.stdout)?.[1] ?? 0);
  return { ...kv(line.slice(7)), line, non2xx };
}
