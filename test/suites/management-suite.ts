/**
 * Certificate, hostname-settings and mapping management over HTTP, end to end: real api and worker processes,
 * real Redis, a real mTLS target. Defined once and run against each store adapter
 * (management-embedded.test.ts, management-vault.test.ts).
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA, issueCertificate } from '../../scripts/lib/pki.ts';
import type { CA, Issued } from '../../scripts/lib/pki.ts';
import { startMtlsTarget } from '../../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../../scripts/lib/mtls-target.ts';
import { startRelay } from '../support/relay.ts';
import type { Relay, StoreKind } from '../support/relay.ts';
import type { SuiteOptions } from './suite-options.ts';
import { call, forward, hexFingerprint } from './admin-client.ts';
import type { ApiResponse } from './admin-client.ts';
import { SEED, shapeMismatches } from './cloudflare-seed.ts';
import { dumpRedis, pemBodyLines } from './redis-dump.ts';

const newAccount = (): string => `acc${randomBytes(4).toString('hex')}`;
const certs = (account: string): string => `/accounts/${account}/access/certificates`;

/** A Cloudflare failure envelope with the given status and integer code. */
function expectCfError(res: ApiResponse, status: number, code: number): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(shapeMismatches(res.json, SEED.failure)).toEqual([]);
  expect(res.json).toMatchObject({ success: false, messages: [], result: null });
  expect(res.json.errors).toHaveLength(1);
  expect(res.json.errors[0].code).toBe(code);
  expect(res.json.errors[0].message.length).toBeGreaterThan(0);
  // Every error links into the relay's error page, at the entry of its code.
  expect(res.json.errors[0].documentation_url).toMatch(/^\/docs\/errors#[a-z0-9_]+$/);
}

export function defineManagementSuite(kind: StoreKind, options: SuiteOptions = {}): void {
  describe(`management API (${options.label ?? `${kind} store`})`, () => {
    let relay: Relay;
    let clientCa: CA;
    let leafA: Issued;
    let leafB: Issued;
    let expired: Issued;
    let target: MtlsTarget;
    const keys: string[] = [];

    const create = (account: string, body: Record<string, unknown>): Promise<ApiResponse> => call(relay, 'POST', certs(account), body);
    const material = (leaf: Issued): { certificate: string; private_key: string } => ({ certificate: leaf.chainPem, private_key: leaf.keyPem });

    beforeAll(async () => {
      const serverCa = await createCA('mgmt-server-ca');
      clientCa = await createCA('mgmt-client-ca');
      const serverCert = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
      leafA = await issueCertificate(clientCa, { commonName: 'client-a', usage: 'client' });
      leafB = await issueCertificate(clientCa, { commonName: 'client-b', usage: 'client' });
      expired = await issueCertificate(clientCa, {
        commonName: 'client-expired',
        usage: 'client',
        notBefore: new Date(Date.now() - 3 * 86_400_000),
        notAfter: new Date(Date.now() - 86_400_000),
      });
      keys.push(leafA.keyPem, leafB.keyPem, expired.keyPem);
      target = await startMtlsTarget({ server: serverCert, clientCa: clientCa.certPem, requireClientCert: false });
      relay = await startRelay({ kind, workers: 1, targetCaPem: serverCa.certPem, ...(options.vault === undefined ? {} : { vault: options.vault() }) });
    });

    afterAll(async () => {
      await relay?.close();
      await target?.close();
    });

    it('certificates: create 201, get, list, update, rotate and delete 200, each in the seed shape', async () => {
      const account = newAccount();
      const created = await create(account, { name: 'primary', ...material(leafA), associated_hostnames: ['API.Example.com', '*.example.org'] });
      expect(created.status, created.text).toBe(201);
      expect(created.json).toMatchObject({ success: true, errors: [], messages: [] });
      expect(shapeMismatches(created.json.result, SEED.certificate)).toEqual([]);
      const c = created.json.result;
      const leaf = new X509Certificate(leafA.certPem);
      expect(c).toMatchObject({
        name: 'primary',
        fingerprint: hexFingerprint(leafA.fingerprint256),
        expires_on: new Date(leaf.validTo).toISOString(),
        not_before: new Date(leaf.validFrom).toISOString(),
        serial_number: leafA.serialNumber,
        associated_hostnames: ['api.example.com', '*.example.org'],
      });
      expect(c.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(Date.parse(c.created_at)).not.toBeNaN();
      expect(created.text).not.toMatch(/PRIVATE KEY|private_key/);

      const got = await call(relay, 'GET', `${certs(account)}/${c.id}`);
      expect(got.status).toBe(200);
      expect(shapeMismatches(got.json.result, SEED.certificate)).toEqual([]);
      expect(got.json.result).toEqual(c);

      const list = await call(relay, 'GET', certs(account));
      expect(list.status).toBe(200);
      expect(shapeMismatches(list.json.result, SEED.certificateList)).toEqual([]);
      expect(list.json.result).toEqual([c]);
      expect(list.json.result_info).toEqual({ page: 1, per_page: 50, count: 1, total_count: 1, total_pages: 1 });

      const renamed = await call(relay, 'PUT', `${certs(account)}/${c.id}`, { name: 'renamed', associated_hostnames: ['api.example.com'] });
      expect(renamed.status, renamed.text).toBe(200);
      expect(shapeMismatches(renamed.json.result, SEED.certificate)).toEqual([]);
      expect(renamed.json.result).toMatchObject({ id: c.id, name: 'renamed', fingerprint: c.fingerprint, associated_hostnames: ['api.example.com'], created_at: c.created_at });
      expect(Date.parse(renamed.json.result.updated_at)).toBeGreaterThanOrEqual(Date.parse(c.updated_at));

      const rotated = await call(relay, 'PUT', `${certs(account)}/${c.id}`, { associated_hostnames: ['api.example.com'], ...material(leafB) });
      expect(rotated.status, rotated.text).toBe(200);
      expect(rotated.json.result).toMatchObject({ id: c.id, name: 'renamed', fingerprint: hexFingerprint(leafB.fingerprint256), serial_number: leafB.serialNumber });
      expect(rotated.text).not.toMatch(/PRIVATE KEY/);

      const deleted = await call(relay, 'DELETE', `${certs(account)}/${c.id}`);
      expect(deleted.status).toBe(200);
      expect(shapeMismatches(deleted.json.result, SEED.deleted)).toEqual([]);
      expect(deleted.json).toEqual({ success: true, errors: [], messages: [], result: { id: c.id } });
      expectCfError(await call(relay, 'GET', `${certs(account)}/${c.id}`), 404, 12006);
      expect((await call(relay, 'GET', certs(account))).json.result).toEqual([]);
    });

    it('a certificate uploaded without private_key is a root (type root in every result); with one, a client', async () => {
      const account = newAccount();
      const root = await create(account, { name: 'root', certificate: clientCa.certPem, associated_hostnames: ['partner.example.com'] });
      expect(root.status, root.text).toBe(201);
      expect(shapeMismatches(root.json.result, SEED.certificate)).toEqual([]);
      expect(root.json.result).toMatchObject({ type: 'root', name: 'root', associated_hostnames: ['partner.example.com'] });
      const client = await create(account, { name: 'client', ...material(leafA) });
      expect(client.json.result.type).toBe('client');
      expect((await call(relay, 'GET', `${certs(account)}/${root.json.result.id}`)).json.result).toEqual(root.json.result);
      expect((await call(relay, 'GET', certs(account))).json.result.map((c: { type: string }) => c.type)).toEqual(['root', 'client']);
    });

    it("the shape check itself reports a wrong type and a missing field", () => {
      expect(shapeMismatches({ id: 1, name: 'x' }, SEED.deleted)).toEqual(['$.id: expected a string, got 1']);
      expect(shapeMismatches({ success: false, errors: [{ code: '12006', message: 'm' }], messages: [], result: null }, SEED.failure)).toEqual([
        '$.errors[0].code: expected an integer, got "12006"',
      ]);
      expect(shapeMismatches([{ hostname: 'h', china_network: false }], SEED.settings)).toEqual(['$[0].client_certificate_forwarding: missing']);
    });

    it('list: page and per_page slice the list, result_info counts it, a page past the end is empty', async () => {
      const account = newAccount();
      for (const name of ['one', 'two', 'three']) expect((await create(account, { name, ...material(leafA) })).status).toBe(201);
      const first = await call(relay, 'GET', `${certs(account)}?per_page=2`);
      expect(first.json.result.map((c: { name: string }) => c.name)).toEqual(['one', 'two']);
      expect(first.json.result_info).toEqual({ page: 1, per_page: 2, count: 2, total_count: 3, total_pages: 2 });
      const second = await call(relay, 'GET', `${certs(account)}?page=2&per_page=2`);
      expect(second.json.result.map((c: { name: string }) => c.name)).toEqual(['three']);
      expect(second.json.result_info).toEqual({ page: 2, per_page: 2, count: 1, total_count: 3, total_pages: 2 });
      const past = await call(relay, 'GET', `${certs(account)}?page=3&per_page=2`);
      expect(past.status).toBe(200);
      expect(past.json.result).toEqual([]);
      for (const bad of ['per_page=0', 'per_page=abc', 'page=-1', 'per_page=1001']) {
        expectCfError(await call(relay, 'GET', `${certs(account)}?${bad}`), 400, 12000);
      }
    });

    it('settings: PUT answers 202 with the list, GET returns it, both in the seed shape', async () => {
      const account = newAccount();
      const empty = await call(relay, 'GET', `${certs(account)}/settings`);
      expect(empty.status).toBe(200);
      expect(empty.json).toEqual({ success: true, errors: [], messages: [], result: [] });
      const settings = [
        { hostname: 'admin.example.com', china_network: false, client_certificate_forwarding: true },
        { hostname: '*.internal.example.com', china_network: true, client_certificate_forwarding: false },
      ];
      const put = await call(relay, 'PUT', `${certs(account)}/settings`, { settings });
      expect(put.status, put.text).toBe(202);
      expect(shapeMismatches(put.json.result, SEED.settings)).toEqual([]);
      expect(put.json.result).toEqual(settings);
      const got = await call(relay, 'GET', `${certs(account)}/settings`);
      expect(got.status).toBe(200);
      expect(shapeMismatches(got.json.result, SEED.settings)).toEqual([]);
      expect(got.json.result).toEqual(settings);

      const badHost = await call(relay, 'PUT', `${certs(account)}/settings`, { settings: [settings[0], { ...settings[1], hostname: 'https://x.example/y' }] });
      expectCfError(badHost, 400, 12005);
      expect(badHost.json.errors[0].source).toEqual({ pointer: '/settings/1/hostname' });
      const missingField = await call(relay, 'PUT', `${certs(account)}/settings`, { settings: [{ hostname: 'a.example.com' }] });
      expectCfError(missingField, 400, 12000);
      expect(missingField.json.errors[0].source).toEqual({ pointer: '/settings/0/china_network' });
      expect((await call(relay, 'GET', `${certs(account)}/settings`)).json.result).toEqual(settings);
    });

    it('bad input gets 400/404/409 with a Cloudflare error body naming the problem', async () => {
      const account = newAccount();
      const garbage = await create(account, { name: 'g', certificate: 'not a certificate', private_key: leafA.keyPem });
      expectCfError(garbage, 400, 12002);
      expect(garbage.json.errors[0].message).toMatch(/^certificate:/);

      const brokenPem = await create(account, { name: 'g', certificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', private_key: leafA.keyPem });
      expectCfError(brokenPem, 400, 12002);

      const otherKey = await create(account, { name: 'k', certificate: leafA.chainPem, private_key: leafB.keyPem });
      expectCfError(otherKey, 400, 12003);
      expect(otherKey.json.errors[0].message).toMatch(/private_key: the key does not belong/);
      expect(otherKey.json.errors[0].source).toEqual({ pointer: '/private_key' });

      const old = await create(account, { name: 'e', ...material(expired) });
      expectCfError(old, 400, 12004);
      expect(old.json.errors[0].message).toMatch(/expired/);

      const url = await create(account, { name: 'h', ...material(leafA), associated_hostnames: ['ok.example.com', 'https://x.example/y'] });
      expectCfError(url, 400, 12005);
      expect(url.json.errors[0].message).toMatch(/^associated_hostnames\[1\]/);
      expect(url.json.errors[0].source).toEqual({ pointer: '/associated_hostnames/1' });
      for (const bad of ['x.example.com:443', 'a b.example.com', 'x.*.example.com', '127.0.0.1', '']) {
        expectCfError(await create(account, { name: 'h', ...material(leafA), associated_hostnames: [bad] }), 400, 12005);
      }

      // Without private_key the upload is a root, and a client leaf is no CA.
      const missing = await create(account, { name: 'm', certificate: leafA.chainPem });
      expectCfError(missing, 400, 12002);
      expect(missing.json.errors[0].message).toMatch(/^certificate: without private_key this is a root certificate/);
      expect(missing.json.errors[0].source).toEqual({ pointer: '/certificate' });
      const noName = await create(account, material(leafA));
      expectCfError(noName, 400, 12000);
      expect(noName.json.errors[0].source).toEqual({ pointer: '/name' });
      expectCfError(await call(relay, 'POST', certs(account), '{"name": "broken json'), 400, 12000);
      expectCfError(await call(relay, 'POST', `/accounts/bad..id/access/certificates`, { name: 'x', ...material(leafA) }), 400, 12001);

      const unknown = '7d7b6c44-0000-4000-8000-000000000000';
      expectCfError(await call(relay, 'GET', `${certs(account)}/${unknown}`), 404, 12006);
      expectCfError(await call(relay, 'PUT', `${certs(account)}/${unknown}`, { associated_hostnames: [] }), 404, 12006);
      expectCfError(await call(relay, 'DELETE', `${certs(account)}/${unknown}`), 404, 12006);
      expectCfError(await call(relay, 'GET', `/accounts/${account}/access/nothing-here`), 404, 7000);
      expectCfError(await call(relay, 'GET', certs(account), undefined, { authorization: 'Bearer not-a-token' }), 401, 10000);

      const first = await create(account, { name: 'dup', ...material(leafA) });
      expect(first.status).toBe(201);
      expectCfError(await create(account, { name: 'dup', ...material(leafB) }), 409, 12007);
      const id = first.json.result.id as string;
      expectCfError(await call(relay, 'PUT', `${certs(account)}/${id}`, { associated_hostnames: [], certificate: leafB.chainPem }), 400, 12000);
      expectCfError(await call(relay, 'PUT', `${certs(account)}/${id}`, { name: 'x' }), 400, 12000);

      const mapping = await call(relay, 'POST', `/mtls/account/${account}/mappings`, { serviceName: 'svc', url: 'https://api.example.com/x', certificateId: id });
      expect(mapping.status).toBe(201);
      const refused = await call(relay, 'DELETE', `${certs(account)}/${id}`);
      expectCfError(refused, 409, 12007);
      expect(refused.json.errors[0].message).toMatch(/mapping/);
      expect((await call(relay, 'DELETE', `/mtls/account/${account}/mappings/${mapping.json.id}`)).status).toBe(204);
      expect((await call(relay, 'DELETE', `${certs(account)}/${id}`)).status).toBe(200);
    });

    it('wrong methods answer 405 with Allow, unknown paths 404, both in the envelope; every documentation_url has its entry', async () => {
      const account = newAccount();
      const cases: Array<[string, string, string]> = [
        ['DELETE', certs(account), 'GET, HEAD, POST'],
        ['PATCH', `${certs(account)}/some-id`, 'GET, HEAD, PUT, DELETE'],
        ['POST', `${certs(account)}/settings`, 'GET, HEAD, PUT'],
      ];
      for (const [method, path, allow] of cases) {
        const res = await call(relay, method, path, method === 'DELETE' ? undefined : {});
        expectCfError(res, 405, 7001);
        expect(res.headers['allow']).toBe(allow);
        expect(res.json.errors[0].documentation_url).toBe('/docs/errors#method_not_allowed');
      }
      for (const path of [`/accounts/${account}`, `/accounts/${account}/access`, `/accounts/${account}/access/certificates/a/b`, '/accounts/']) {
        const res = await call(relay, 'GET', path);
        expectCfError(res, 404, 7000);
        expect(res.json.errors[0].documentation_url).toBe('/docs/errors#no_route');
      }
      // The documentation page is the api's own, open, with an entry for each code an error links to.
      const page = await call(relay, 'GET', '/docs/errors', undefined, { authorization: '' });
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      for (const anchor of ['no_route', 'method_not_allowed', 'invalid_certificate', 'invalid_body', 'pkcs12_wrong_passphrase', 'certificate_not_client']) {
        expect(page.text).toContain(`id="${anchor}"`);
      }
    });

    it('mappings: POST 201, GET list and one, duplicate 409, unknown certificate 404, DELETE 204, all problem+json on error', async () => {
      const account = newAccount();
      const cert = (await create(account, { name: 'm', ...material(leafA) })).json.result;
      const body = { serviceName: 'billing', url: 'HTTPS://API.Example.com:443/v1/pay?x=1', certificateId: cert.id };
      const created = await call(relay, 'POST', `/mtls/account/${account}/mappings`, body);
      expect(created.status, created.text).toBe(201);
      expect(created.json).toMatchObject({ accountId: account, serviceName: 'billing', url: 'https://api.example.com/v1/pay?x=1', certificateId: cert.id });
      expect(created.headers['location']).toBe(`/mtls/account/${account}/mappings/${created.json.id}`);
      expect((await call(relay, 'GET', `/mtls/account/${account}/mappings`)).json).toEqual([created.json]);
      expect((await call(relay, 'GET', `/mtls/account/${account}/mappings/${created.json.id}`)).json).toEqual(created.json);

      const duplicate = await call(relay, 'POST', `/mtls/account/${account}/mappings`, { ...body, url: 'https://api.example.com/v1/pay?x=1' });
      expect(duplicate.status).toBe(409);
      expect(duplicate.headers['content-type']).toBe('application/problem+json');
      expect(duplicate.json).toMatchObject({ code: 'conflict', status: 409 });

      const unknown = await call(relay, 'POST', `/mtls/account/${account}/mappings`, { ...body, serviceName: 'other', certificateId: 'no-such-certificate' });
      expect(unknown.status).toBe(404);
      expect(unknown.json).toMatchObject({ code: 'not_found' });
      const badUrl = await call(relay, 'POST', `/mtls/account/${account}/mappings`, { ...body, url: 'ftp://x.example/' });
      expect(badUrl.status).toBe(400);
      expect(badUrl.json).toMatchObject({ code: 'invalid_body' });
      expect(badUrl.json.detail).toMatch(/^url:/);
      const noCert = await call(relay, 'POST', `/mtls/account/${account}/mappings`, { serviceName: 'x', url: 'https://a.example/' });
      expect(noCert.status).toBe(400);
      expect(noCert.json.detail).toMatch(/^certificateId/);

      expect((await call(relay, 'DELETE', `/mtls/account/${account}/mappings/${created.json.id}`)).status).toBe(204);
      const again = await call(relay, 'DELETE', `/mtls/account/${account}/mappings/${created.json.id}`);
      expect(again.status).toBe(404);
      expect(again.headers['content-type']).toBe('application/problem+json');
      expect((await call(relay, 'GET', `/mtls/account/${account}/mappings`)).json).toEqual([]);
    });

    it('a certificate with associated hostname H is used for https://H/...; a mapping makes exactly that tuple use its certificate', async () => {
      const account = newAccount();
      const byHost = (await create(account, { name: 'by-host', ...material(leafA), associated_hostnames: ['localhost'] })).json.result;
      const mapped = (await create(account, { name: 'mapped', ...material(leafB) })).json.result;
      const pay = `${target.url}/pay`;
      const other = `${target.url}/other`;
      const seen = async (url: string, service: string): Promise<[string | undefined, string | undefined]> => {
        target.reset();
        const res = await forward(relay, account, url, service);
        expect(res.status, res.text).toBe(200);
        return [res.headers['lp-mtls-certificate-id'] as string | undefined, target.requests[0]?.clientCert?.fingerprint256];
      };

      expect(await seen(pay, 'billing')).toEqual([byHost.id, leafA.fingerprint256]);
      const mapping = await call(relay, 'POST', `/mtls/account/${account}/mappings`, { serviceName: 'billing', url: pay, certificateId: mapped.id });
      expect(mapping.status).toBe(201);
      expect(await seen(pay, 'billing')).toEqual([mapped.id, leafB.fingerprint256]);
      expect(await seen(pay, 'orders')).toEqual([byHost.id, leafA.fingerprint256]);
      expect(await seen(other, 'billing')).toEqual([byHost.id, leafA.fingerprint256]);
    });

    it('private keys are never returned by any route nor written to the logs', async () => {
      const account = newAccount();
      const created = await create(account, { name: 'secret', ...material(leafA) });
      const responses = [
        created,
        await call(relay, 'GET', certs(account)),
        await call(relay, 'GET', `${certs(account)}/${created.json.result.id}`),
        await call(relay, 'PUT', `${certs(account)}/${created.json.result.id}`, { associated_hostnames: [], ...material(leafB) }),
      ];
      const secrets = keys.flatMap(pemBodyLines);
      for (const res of responses) {
        expect(res.text).not.toMatch(/PRIVATE KEY/);
        for (const line of secrets) expect(res.text).not.toContain(line);
      }
      const logs = [relay.api, ...relay.workers].map((p) => p.output.join('')).join('\n');
      expect(logs.length).toBeGreaterThan(0);
      expect(logs).not.toMatch(/PRIVATE KEY/);
      for (const line of secrets) expect(logs).not.toContain(line);
    });

    // Keep last: it inspects what everything above left in Redis.
    it('after the suite, a dump of every Redis key contains no private key in clear', async () => {
      const dump = await dumpRedis(relay.client);
      expect(dump.keys).toBeGreaterThan(0);
      expect(dump.text).not.toMatch(/PRIVATE KEY/);
      for (const line of keys.flatMap(pemBodyLines)) expect(dump.text).not.toContain(line);
      if (kind === 'embedded') expect(dump.text).toContain(':store:doc:accounts/');
    });
  });
}
