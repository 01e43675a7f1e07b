/**
 * Listeners on addresses the relay must never dial: every TCP connection they accept is recorded, so a
 * test can show that a refused target saw nothing (not even a TCP handshake). All share one port.
 */
import { createServer } from 'node:net';
import type { Server } from 'node:net';

export interface Trap {
  port: number;
  /** `address:port` of every connection accepted, in order. */
  readonly hits: string[];
  /** Forgets the hits so far. */
  reset(): void;
  close(): Promise<void>;
}

export async function startTrap(addresses: readonly string[], port = 0): Promise<Trap> {
  const hits: string[] = [];
  const servers: Server[] = [];
  let bound = port;
  for (const address of addresses) {
    const server = createServer((socket) => {
      hits.push(`${socket.localAddress ?? '?'}:${socket.localPort ?? '?'}`);
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: bound, host: address, ipv6Only: address.includes(':') && address !== '::' }, () => resolve());
    });
    const a = server.address();
    if (typeof a === 'object' && a !== null) bound = a.port;
    servers.push(server);
  }
  return {
    port: bound,
    hits,
    reset: () => {
      hits.length = 0;
    },
    close: async () => {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}
