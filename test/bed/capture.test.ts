/**
 * What an observer on the wire sees: tcpdump on h1's interface while a session attribute with a
 * random value is written on h1 and read on h2 (so it crossed the link). With the cluster key
 * (encrypted, the default) the capture does not contain the value; the control, the same capture
 * of an `insecure: true` cluster (no key, no encryption), does: the capture sees the payload.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { bedUnavailable, NetBed } from '../helpers/netbed.js';
import { waitFor } from '../helpers/wait.js';

const skip = await bedUnavailable(['tcpdump']);

/** Starts tcpdump on h1's eth0 into `file`; resolves once it listens. */
async function capture(bed: NetBed, file: string): Promise<{ child: ChildProcess; stderr: string[] }> {
  // --immediate-mode and -U: each packet is delivered and written at once (no buffered block lost at SIGINT); -s 0: whole frames; -Z root: keep writing into the bed's 0700 directory.
  const child = bed.spawnIn(1, 'tcpdump', [
    '-i',
    'eth0',
    '-n',
    '-s',
    '0',
    '-U',
    '--immediate-mode',
    '-Z',
    'root',
    '-w',
    file,
  ]);
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  await waitFor(() => stderr.some((l) => l.includes('listening on')) || child.exitCode !== null, 'tcpdump to listen', {
    timeoutMs: 10_000,
    intervalMs: 10,
  });
  assert.equal(child.exitCode, null, `tcpdump runs: ${stderr.join('\n')}`);
  return { child, stderr };
}

/** TCP payload bytes from `src` to `dst` (IPv4 dotted) in a pcap file (Ethernet, either byte order). */
function tcpPayloadBytes(pcap: Buffer, src: string, dst: string): number {
  const magic = pcap.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const u32 = (at: number) => (le ? pcap.readUInt32LE(at) : pcap.readUInt32BE(at));
  const ip = (at: number) => [0, 1, 2, 3].map((i) => pcap[at + i]).join('.');
  let total = 0;
  for (let at = 24; at + 16 <= pcap.length; ) {
    const len = u32(at + 8);
    const frame = at + 16;
    at = frame + len;
    if (len < 34 || pcap.readUInt16BE(frame + 12) !== 0x0800) continue; // not IPv4
    const ihl = (pcap[frame + 14]! & 0x0f) * 4;
    if (pcap[frame + 23] !== 6 || ip(frame + 26) !== src || ip(frame + 30) !== dst) continue; // not TCP src → dst
    const tcp = frame + 14 + ihl;
    total += pcap.readUInt16BE(frame + 16) - ihl - (pcap[tcp + 12]! >> 4) * 4;
  }
  return total;
}

/** Captures while a marker is written on h1 and read on h2; returns the capture and the marker. */
async function run(insecure: boolean): Promise<{ pcap: Buffer; marker: string; packets: number }> {
  const bed = await NetBed.create({ nodes: 2, membership: 'multicast', insecure, startOrder: 'parallel' });
  try {
    await bed.waitView(bed.fullMesh(), 'two nodes', 15_000);
    const file = join(bed.dir, 'capture.pcap');
    const { child, stderr } = await capture(bed, file);
    const marker = `M${randomBytes(12).toString('hex')}`;
    const written = await bed.get(1, `/mark/set?v=${marker}`);
    assert.match(written.body, new RegExp(`marker=${marker}`));
    await waitFor(
      async () => (await bed.get(2, '/mark/read', written.session)).body.includes(marker),
      'h2 to read it',
      {
        timeoutMs: 5_000,
        intervalMs: 20,
      },
    );
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGINT');
    await exited;
    const packets = Number(/(\d+) packets? captured/.exec(stderr.join('\n'))?.[1] ?? 0);
    return { pcap: readFileSync(file), marker, packets };
  } finally {
    await bed.destroy();
  }
}

describe('bed: a capture between two namespaces', { skip }, () => {
  test('with the cluster key contains no attribute value; without one (control) it does', async (t) => {
    const t0 = Date.now();
    const encrypted = await run(false);
    const plain = await run(true);
    t.diagnostic(
      `encrypted: ${encrypted.packets} packets, ${encrypted.pcap.length} bytes; insecure: ${plain.packets} packets, ${plain.pcap.length} bytes`,
    );
    assert.ok(encrypted.packets > 0 && plain.packets > 0, 'both captures saw packets');
    // The replication of the attribute is in the encrypted capture: TCP payload from h1 to h2.
    const sent = tcpPayloadBytes(encrypted.pcap, '10.77.0.1', '10.77.0.2');
    const sentPlain = tcpPayloadBytes(plain.pcap, '10.77.0.1', '10.77.0.2');
    t.diagnostic(`TCP payload h1 → h2: encrypted ${sent} bytes, insecure ${sentPlain} bytes`);
    assert.ok(sent > encrypted.marker.length, 'the encrypted capture holds the replication message');
    assert.equal(plain.pcap.includes(plain.marker), true, 'control: the unencrypted capture shows the value');
    assert.equal(encrypted.pcap.includes(encrypted.marker), false, 'the encrypted capture does not');
    t.diagnostic(`test took ${Date.now() - t0} ms`);
  });
});
