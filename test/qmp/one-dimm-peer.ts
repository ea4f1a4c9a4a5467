/**
 * A QMP peer on TCP that knows one DIMM (d1: 1 GiB at 4 GiB on node 1, slot 0): the greeting, then an
 * empty answer to each command but query-memory-devices. For CLI tests that need `memhp qmp` to reach a
 * QEMU without booting one.
 */
import net from 'node:net';

/** The DIMM the peer reports, as QEMU's query-memory-devices does. */
export const PEER_DIMM = { type: 'dimm', data: { id: 'd1', addr: 2 ** 32, size: 2 ** 30, slot: 0, node: 1, memdev: '/objects/mem-d1', hotplugged: true, hotpluggable: true } };

/** Start the peer on 127.0.0.1; `close` stops it. */
export async function oneDimmPeer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((c) => {
    c.write('{"QMP": {"version": {"qemu": {"major": 9, "minor": 2, "micro": 0}, "package": ""}, "capabilities": []}}\n');
    let buf = '';
    c.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const cmd = JSON.parse(buf.slice(0, nl)) as { execute: string; id?: string };
        buf = buf.slice(nl + 1);
        c.write(`${JSON.stringify({ return: cmd.execute === 'query-memory-devices' ? [PEER_DIMM] : {}, id: cmd.id })}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
