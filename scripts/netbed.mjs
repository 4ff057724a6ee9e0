#!/usr/bin/env node
// The multi-host test bed for humans (root, Linux; needs `npm run build && npm run build:test`):
//   node scripts/netbed.mjs up [N] [--static] [--insecure] [--drop MS]
//       N namespaces h1..hN (10.77.0.K) on a bridge, one clowder node each; stays in the
//       foreground and reads commands on stdin (type "help"); Ctrl-C or "quit" tears it all down.
//   node scripts/netbed.mjs exec K CMD [ARGS...]
//       runs CMD in host K's namespace of the running bed, e.g. `exec 1 curl -s 10.77.0.2:8080/app/read`
//   node scripts/netbed.mjs down [--all]
//       deletes what crashed beds left (their owner process is gone); --all: every bed namespace
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const BUILT = fileURLToPath(new URL('../.test-build/test/helpers/', import.meta.url));
if (!existsSync(`${BUILT}netbed.js`)) {
  process.stderr.write('netbed: build first: npm run build && npm run build:test\n');
  process.exit(2);
}
const { NetBed } = await import(`${BUILT}netbed.js`);
const { bedUnavailable, listBedNamespaces, sweepStale } = await import(`${BUILT}netbed-net.js`);

const HELP = `commands:
  views                    each node's members
  get K PATH [COOKIE]      HTTP GET on node K (e.g. get 1 /app/counter)
  stats K                  node K's /_clowder/stats
  cut K | split 1,2 3 | heal
  loss K PERCENT           drop PERCENT % of h_K's frames each way (0: off)
  delay K MS               hold every packet h_K sends MS ms (0: off; needs iptables, python3)
  pause K | resume K | kill K | restart K
  rules                    the bridge's nftables rules
  quit
`;

async function up(args) {
  const n = Number(args.find((a) => /^\d+$/.test(a)) ?? 3);
  const drop = args.includes('--drop') ? Number(args[args.indexOf('--drop') + 1]) : 2000;
  const why = await bedUnavailable(['nft']);
  if (why) throw new Error(why);
  const bed = await NetBed.create({
    nodes: n,
    membership: args.includes('--static') ? 'static' : 'multicast',
    insecure: args.includes('--insecure'),
    dropTimeMs: drop,
  });
  for (const h of bed.hosts) console.log(`h${h.k}  ${h.address}  ns ${h.ns}  pid ${h.node.pid}`);
  console.log(`admin token (for /_clowder/*): ${bed.adminToken}\ntype "help" for commands`);
  const rl = createInterface({ input: process.stdin, prompt: 'netbed> ' });
  let cookie;
  const ks = (s) => s.split(',').map(Number);
  rl.prompt();
  for await (const line of rl) {
    const [cmd, a, b, c] = line.trim().split(/\s+/);
    try {
      if (cmd === 'quit' || cmd === 'exit') break;
      else if (cmd === 'views') console.log(bed.describeViews());
      else if (cmd === 'get') {
        const res = await bed.get(Number(a), b, c ?? cookie);
        cookie = res.session ?? cookie;
        console.log(res.status, res.body.trim(), res.session ? `(cookie ${res.session})` : '');
      } else if (cmd === 'stats') console.log(JSON.stringify(await bed.stats(Number(a)), null, 2));
      else if (cmd === 'cut') await bed.cut(Number(a));
      else if (cmd === 'split') await bed.split(ks(a), ks(b));
      else if (cmd === 'heal') await bed.heal();
      else if (cmd === 'loss') await bed.loss(Number(a), Number(b));
      else if (cmd === 'delay') await bed.delay(Number(a), Number(b));
      else if (cmd === 'pause') bed.pause(Number(a));
      else if (cmd === 'resume') bed.resume(Number(a));
      else if (cmd === 'kill') await bed.kill(Number(a));
      else if (cmd === 'restart') await bed.restart(Number(a));
      else if (cmd === 'rules') console.log(await bed.net.rules());
      else if (cmd) console.log(HELP);
    } catch (err) {
      console.log(`error: ${err.message}`);
    }
    rl.prompt();
  }
  rl.close();
  await bed.destroy();
  console.log('torn down');
}

function exec(args) {
  const [k, ...cmd] = args;
  const live = listBedNamespaces().filter((n) => n.name.endsWith(`-h${k}`));
  const runs = [...new Set(live.map((n) => n.run))];
  if (runs.length !== 1) throw new Error(`${runs.length} running beds have a host h${k} (need exactly one)`);
  const r = spawnSync('ip', ['netns', 'exec', live[0].name, ...cmd], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
}

const [command, ...rest] = process.argv.slice(2);
try {
  if (command === 'up') await up(rest);
  else if (command === 'exec') exec(rest);
  else if (command === 'down') console.log(`deleted: ${sweepStale(rest.includes('--all')).join(' ') || 'nothing'}`);
  else {
    process.stdout.write(
      'usage: node scripts/netbed.mjs up [N] [--static] [--insecure] [--drop MS] | exec K CMD... | down [--all]\n',
    );
    process.exitCode = command ? 2 : 0;
  }
} catch (err) {
  process.stderr.write(`netbed: ${err.message}\n`);
  process.exitCode = 1;
}
