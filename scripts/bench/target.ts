// Bench target, run as a child process (fork, IPC): an HTTPS server that demands a client certificate and
// answers a small JSON body; /delay/N answers after N ms. Reports requests, connections and full TLS handshakes.
import { createServer } from 'node:https';
import type { TLSSocket } from 'node:tls';

interface Init {
  certPem: string;
  keyPem: string;
  clientCaPem: string;
}

let requests = 0;
let connections = 0;
let handshakes = 0;
const body = Buffer.from(JSON.stringify({ ok: true, from: 'bench-target', padding: 'x'.repeat(64) }));

process.once('message', (init: Init) => {
  const server = createServer(
    { cert: init.certPem, key: init.keyPem, ca: init.clientCaPem, requestCert: true, rejectUnauthorized: true, keepAlive: true },
    (req, res) => {
      requests++;
      const delay = /^\/delay\/(\d+)/.exec(req.url ?? '');
      const answer = (): void => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
        res.end(body);
      };
      req.resume();
      req.on('end', () => (delay === null ? answer() : setTimeout(answer, Number(delay[1]))));
    },
  );
  server.keepAliveTimeout = 60_000;
  server.on('secureConnection', (socket: TLSSocket) => {
    connections++;
    if (!socket.isSessionReused()) handshakes++;
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.send?.({ type: 'ready', port: typeof address === 'object' && address !== null ? address.port : 0 });
  });
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'stats') process.send?.({ type: 'stats', requests, connections, handshakes });
  });
});
