// docker compose's demo-target service: starts the demo mTLS target, writes the CA of its server certificate where
// the workers read it (DEMO_DIR/target-ca.pem), then loads the demo client certificate and a mapping for account
// "demo" through the relay's own API, as an operator would, with a short-lived admin token for that account.
import { rmSync, writeFileSync } from 'node:fs';
import { mintToken } from './lib/tokens.ts';
import { startDemoTarget } from './lib/demo-target.ts';

/** The variables this script reads besides the relay's AUTH_* settings (test/compose.test.ts checks compose against them). */
export const DEMO_VARIABLES = ['DEMO_DIR', 'DEMO_TARGET_PORT', 'DEMO_TARGET_HOST', 'DEMO_LISTEN_HOST', 'RELAY_URL'] as const;

async function main(): Promise<void> {
  const env = process.env;
  const account = 'demo';
  const service = 'demo-service';
  const relay = (env['RELAY_URL'] ?? 'http://api:8080').replace(/\/$/, '');
  const dir = env['DEMO_DIR'] ?? '/demo';
  const secret = env['AUTH_JWT_SECRET'];
  if (secret === undefined || secret === '') throw new Error('AUTH_JWT_SECRET is required: the demo signs an admin token with it to call the API');

  // A CA left on the volume by an earlier run must not look ready (the workers wait for this file).
  rmSync(`${dir}/target-ca.pem`, { force: true });
  const target = await startDemoTarget(Number(env['DEMO_TARGET_PORT'] ?? 9443), env['DEMO_LISTEN_HOST'] ?? '0.0.0.0');
  const url = `https://${env['DEMO_TARGET_HOST'] ?? 'demo-target'}:${new URL(target.url).port}/hello`;
  writeFileSync(`${dir}/target-ca.pem`, target.serverCaPem);

  const token = await mintToken({
    secret,
    roles: [env['AUTH_ADMIN_ROLE'] ?? 'admin'],
    accounts: [account],
    ttlSeconds: 300,
    subject: 'demo-compose',
    issuer: env['AUTH_JWT_ISSUER'],
    audience: env['AUTH_JWT_AUDIENCE']?.split(',').map((a) => a.trim()).filter((a) => a !== ''),
    rolesClaim: env['AUTH_ROLES_CLAIM'],
    accountsClaim: env['AUTH_ACCOUNTS_CLAIM'],
  });

  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const res = await fetch(`${relay}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.status >= 400) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
    return { status: res.status, json: text === '' ? null : JSON.parse(text) };
  }

  // The API answers once Redis and the store are ready.
  for (let ready = false; !ready; ) {
    ready = await fetch(`${relay}/readyz`).then((r) => r.ok, () => false);
    if (!ready) await new Promise((r) => setTimeout(r, 1_000));
  }

  // Fresh material on every start: drop what an earlier run loaded (the mapping first: a mapped certificate is kept).
  const mappings = (await call('GET', `/mtls/account/${account}/mappings`)).json as Array<{ id: string; serviceName: string }>;
  for (const m of mappings.filter((m) => m.serviceName === service)) await call('DELETE', `/mtls/account/${account}/mappings/${m.id}`);
  const certificates = (await call('GET', `/accounts/${account}/access/certificates`)).json as { result: Array<{ id: string; name: string }> };
  for (const c of certificates.result.filter((c) => c.name === 'demo-client')) await call('DELETE', `/accounts/${account}/access/certificates/${c.id}`);

  const created = (await call('POST', `/accounts/${account}/access/certificates`, {
    name: 'demo-client',
    certificate: target.client.chainPem,
    private_key: target.client.keyPem,
  })).json as { result: { id: string } };
  await call('POST', `/mtls/account/${account}/mappings`, { serviceName: service, url, certificateId: created.result.id });

  console.log(`demo ready: certificate ${created.result.id} mapped for account ${account}, service ${service}, ${url}`);
  console.log(`try: curl -sS -i ${relay}/mtls/account/${account} -H 'Authorization: Bearer <token>' -H 'LP-forward-url: ${url}' -H 'LP-service-name: ${service}'`);
}

// Imported by tests for DEMO_VARIABLES; runs only as the entry point.
if (import.meta.main) await main();
