/**
 * A node that seals with the native AES-GCM module and one that uses node:crypto
 * (CLOWDER_NATIVE_GCM=off) form one cluster and exchange messages both ways, small ones and ones
 * that span several sealed records, encrypted and authenticated only: the two engines write the
 * same records. (Without the native module built, both nodes use node:crypto.)
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { nativeGcm } from '../../src/wire/native-gcm.js';
import { killAll, NodeProcess } from '../helpers/processes.js';
import { freePorts, waitFor } from '../helpers/wait.js';

const KEY = 'mixed-engines-cluster-key-of-at-least-32-characters';

for (const encrypt of [true, false]) {
  describe(`native and node:crypto nodes in one cluster (encrypt: ${encrypt})`, () => {
    const nodes: NodeProcess[] = [];
    after(() => killAll(nodes));

    it('membership forms and acknowledged messages of every size arrive intact both ways', async () => {
      const ports = await freePorts(2);
      const members = ports.map((p) => `127.0.0.1:${p}`);
      const config = (i: number) => ({
        clusterKey: KEY,
        encrypt,
        receiver: { port: ports[i], autoBind: 1 },
        membership: { type: 'static', members, pingIntervalMs: 500, dropTimeMs: 3000 },
      });
      const native = new NodeProcess('native', config(0));
      const plain = new NodeProcess('plain', config(1), { CLOWDER_NATIVE_GCM: 'off' });
      nodes.push(native, plain);
      await Promise.all([native.started(), plain.started()]);
      await waitFor(() => native.members().has('plain') && plain.members().has('native'), 'membership', {
        timeoutMs: 15_000,
      });
      // 200 KB spans four 64 KiB records; the small ones share records.
      const values = [{ n: 1, text: 'small' }, randomBytes(100_000).toString('base64'), { n: 3, list: [1, 2, 3] }];
      let id = 0;
      for (const [from, to] of [
        [native, plain],
        [plain, native],
      ] as const) {
        for (const value of values) {
          const sendId = ++id;
          from.command({ cmd: 'send', to: to.name, value, options: 'use_ack,sync', id: sendId });
          await waitFor(
            () => from.events.find((e) => (e.type === 'sent' || e.type === 'sendFailed') && e.id === sendId),
            `send ${sendId}`,
            { timeoutMs: 15_000 },
          );
          assert.ok(
            from.events.some((e) => e.type === 'sent' && e.id === sendId),
            `send ${sendId} acknowledged`,
          );
        }
        const got = to.events.filter((e) => e.type === 'message' && e.from === from.name).map((e) => e.value);
        assert.deepEqual(got, values, `${from.name} -> ${to.name}`);
      }
      assert.equal(native.exited || plain.exited, false);
      if (nativeGcm === undefined) console.log('# the native module is not built: both nodes used node:crypto');
    });
  });
}
