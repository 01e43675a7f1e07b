// The inline-proxy baseline, run as a child process (fork, IPC): the same Express version as the relay, with the
// undici call (one Agent, TLS context built once) under an opossum breaker inside the route handler. No queue.
import { createSecureContext } from 'node:tls';
import express from 'express';
import CircuitBreaker from 'opossum';
import { Agent } from 'undici';

interface Init {
  certPem: string;
  keyPem: string;
  caPem: string;
}

process.once('message', (init: Init) => {
  const agent = new Agent({
    connect: { secureContext: createSecureContext({ cert: init.certPem, key: init.keyPem, ca: init.caPem }) },
    allowH2: false,
    keepAliveTimeout: 30_000,
  });
  const breaker = new CircuitBreaker(
    async (url: URL, method: string, body: Buffer | null) => {
      const res = await agent.request({ origin: url.origin, path: url.pathname + url.search, method: method as 'GET', body, signal: AbortSignal.timeout(20_000) });
      return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
    },
    { timeout: false, errorThresholdPercentage: 50, resetTimeout: 30_000 },
  );
  const app = express();
  app.disable('x-powered-by');
  app.all('/proxy', express.raw({ type: () => true, limit: '10mb' }), async (req, res) => {
    const url = new URL(String(req.headers['lp-forward-url']));
    const r = await breaker.fire(url, req.method, Buffer.isBuffer(req.body) && req.body.length > 0 ? req.body : null);
    res.status(r.status);
    const ct = r.headers['content-type'];
    if (typeof ct === 'string') res.setHeader('content-type', ct);
    res.end(r.body);
  });
  const server = app.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.send?.({ type: 'ready', port: typeof address === 'object' && address !== null ? address.port : 0 });
  });
  server.keepAliveTimeout = 60_000;
});
