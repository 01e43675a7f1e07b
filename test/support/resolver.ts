/**
 * A tiny authoritative DNS server on loopback for the SSRF tests: the relay's TARGET_DNS_SERVERS points at
 * it, so test names resolve to whatever a test says (private addresses, loopback, a rebinding sequence)
 * without any real DNS. Answers A and AAAA over UDP with TTL 0 (nothing cached); unknown names → NXDOMAIN.
 */
import { createSocket } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import { parseIp } from '../../packages/shared/src/net-policy.ts';

/** A fixed answer, or one chosen by how many queries of this type the name has had so far (0 first). */
export type DnsAnswer = string[] | ((queryNumber: number) => string[]);

export interface TestDns {
  /** For TARGET_DNS_SERVERS, e.g. `127.0.0.1:53535`. */
  server: string;
  set(name: string, answer: DnsAnswer): void;
  /** Every question asked, in order. */
  readonly queries: Array<{ name: string; type: 'A' | 'AAAA' | number }>;
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_AAAA = 28;

function readName(msg: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let i = offset;
  while (i < msg.length) {
    const len = msg[i] as number;
    if (len === 0) return { name: labels.join('.').toLowerCase(), end: i + 1 };
    if (len >= 0xc0) throw new Error('compressed question names are not expected');
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
  throw new Error('truncated name');
}

function rdata(address: string): Buffer {
  const ip = parseIp(address);
  if (ip === null) throw new Error(`not an address: ${address}`);
  return Buffer.from(ip.toByteArray());
}

export async function startTestDns(): Promise<TestDns> {
  const table = new Map<string, DnsAnswer>();
  const counts = new Map<string, number>();
  const queries: TestDns['queries'] = [];
  const socket = createSocket('udp4');

  socket.on('message', (msg, peer) => {
    let reply: Buffer;
    try {
      const { name, end } = readName(msg, 12);
      const qtype = msg.readUInt16BE(end);
      queries.push({ name, type: qtype === TYPE_A ? 'A' : qtype === TYPE_AAAA ? 'AAAA' : qtype });
      const question = msg.subarray(12, end + 4);
      const entry = table.get(name.replace(/\.$/, ''));
      const countKey = `${name}/${qtype}`;
      const n = counts.get(countKey) ?? 0;
      counts.set(countKey, n + 1);
      const all = entry === undefined ? [] : typeof entry === 'function' ? entry(n) : entry;
      const matching = all.filter((a) => (qtype === TYPE_A ? isIPv4(a) : qtype === TYPE_AAAA ? isIPv6(a) : false));
      const header = Buffer.alloc(12);
      header.writeUInt16BE(msg.readUInt16BE(0), 0);
      // QR, AA, RD copied, RA; NXDOMAIN when the name is unknown.
      header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | (entry === undefined ? 3 : 0), 2);
      header.writeUInt16BE(1, 4);
      header.writeUInt16BE(matching.length, 6);
      const answers = matching.map((a) => {
        const data = rdata(a);
        const rr = Buffer.alloc(12);
        rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
        rr.writeUInt16BE(qtype, 2);
        rr.writeUInt16BE(1, 4); // IN
        rr.writeUInt32BE(0, 6); // TTL 0: never cached
        rr.writeUInt16BE(data.length, 10);
        return Buffer.concat([rr, data]);
      });
      reply = Buffer.concat([header, question, ...answers]);
    } catch {
      reply = Buffer.concat([msg.subarray(0, 2), Buffer.from([0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0])]); // FORMERR
    }
    socket.send(reply, peer.port, peer.address);
  });

  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    server: `127.0.0.1:${socket.address().port}`,
    set: (name, answer) => {
      table.set(name.toLowerCase().replace(/\.$/, ''), answer);
    },
    queries,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}
