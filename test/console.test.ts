/**
 * The operator console (/console) in a real browser: Debian's chromium driven by playwright-core, against a whole
 * relay (private Redis, api and worker processes). The page may talk to the relay only: any other request is
 * aborted and fails the test. Every API answer the page receives is checked against the OpenAPI document, and any
 * script error or Content-Security-Policy violation in the page fails the test too.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'undici';
import type { Dispatcher } from 'undici';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { mintToken } from '../scripts/lib/tokens.ts';
import { CONSOLE_CSP } from '../services/api/src/routes/console.ts';
import { assertMatchesOpenApi } from './support/openapi.ts';
import { createCA, issueCertificate } from '../scripts/lib/pki.ts';
import type { CA } from '../scripts/lib/pki.ts';
import { startMtlsTarget } from '../scripts/lib/mtls-target.ts';
import type { MtlsTarget } from '../scripts/lib/mtls-target.ts';
import { startRelay } from './support/relay.ts';
import type { Relay } from './support/relay.ts';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SCREENSHOT = join(ROOT, '.data', 'console-certificates.png');
const DAY_MS = 86_400_000;
const TOKEN_KEY = 'mtls-relay.console.token';

let relay: Relay;
let target: MtlsTarget;
let clientCa: CA;
let browser: Browser;
let files: string;
let adminToken: string;
let scopedToken: string;
// Each test file has its own relay and Redis: a plain account name reads well in the README's screenshot.
const account = 'acme-payments';

/** An API call from the test process (the e2e setup checks its answer against the OpenAPI document too). */
async function call(method: string, path: string, body?: unknown, token = adminToken) {
  const res = await request(`${relay.api.url}${path}`, {
    method: method as Dispatcher.HttpMethod,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) };
}

async function seedCertificate(name: string, daysLeft: number, hostnames: string[]): Promise<string> {
  const leaf = await issueCertificate(clientCa, { commonName: name, usage: 'client', notAfter: new Date(Date.now() + daysLeft * DAY_MS) });
  const res = await call('POST', `/accounts/${account}/access/certificates`, { name, certificate: leaf.chainPem, private_key: leaf.keyPem, associated_hostnames: hostnames });
  expect(res.status).toBe(201);
  return (res.json?.['result'] as { id: string }).id;
}

interface Watched {
  context: BrowserContext;
  page: Page;
  /** Requests the page tried to send anywhere but the relay (aborted). */
  offsite: string[];
  /** Console errors, page errors and CSP violations. */
  errors: string[];
  /** API answers the OpenAPI document does not describe. */
  violations: string[];
  /** Every URL the page requested. */
  urls: string[];
  setCookies: string[];
  /** How many API answers were checked against the OpenAPI document. */
  checked: number;
  /** Waits for the OpenAPI checks of the answers seen so far. */
  settle(): Promise<void>;
}

async function openConsole(): Promise<Watched> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
  context.setDefaultTimeout(20_000);
  const w: Omit<Watched, 'page' | 'settle'> = { context, offsite: [], errors: [], violations: [], urls: [], setCookies: [], checked: 0 };
  const apiOrigin = new URL(relay.api.url).origin;
  // The page must make no request beyond the relay (loopback only).
  await context.route('**/*', async (route) => {
    const url = route.request().url();
    if (new URL(url).hostname === '127.0.0.1') {
      await route.continue();
      return;
    }
    w.offsite.push(url);
    await route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  const checks: Promise<void>[] = [];
  page.on('request', (req) => w.urls.push(req.url()));
  page.on('pageerror', (err) => w.errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    // Chromium logs every 4xx answer to fetch() as "Failed to load resource"; the page shows those in words.
    if (msg.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text())) w.errors.push(`console: ${msg.text()}`);
  });
  page.on('response', (res) => {
    checks.push((async () => {
      const url = new URL(res.url());
      const headers = await res.allHeaders();
      if (headers['set-cookie'] !== undefined) w.setCookies.push(`${url.pathname}: ${headers['set-cookie']}`);
      if (url.origin !== apiOrigin || /^\/(console|docs)\/./.test(url.pathname)) return;
      const body = res.status() === 204 ? Buffer.alloc(0) : await res.body();
      try {
        w.checked += 1;
        assertMatchesOpenApi(res.request().method(), `${url.pathname}${url.search}`, res.status(), headers, body);
      } catch (err) {
        w.violations.push(`${res.request().method()} ${url.pathname} → ${res.status()}: ${(err as Error).message}`);
      }
    })());
  });
  const watched: Watched = Object.assign(w, { page, settle: async () => void (await Promise.all(checks)) });
  return watched;
}

async function signIn(page: Page, token: string, accountId: string): Promise<void> {
  const res = await page.goto(`${relay.api.url}/console`);
  expect(res?.status()).toBe(200);
  await page.fill('#login-token', token);
  await page.fill('#login-account', accountId);
  await page.click('#login-form button[type=submit]');
  await page.locator('#app').waitFor({ state: 'visible' });
}

const rowOf = (page: Page, table: string, text: string) => page.locator(`#${table} tbody tr`, { hasText: text });

describe('the operator console in a browser', () => {
  beforeAll(async () => {
    const serverCa = await createCA('console-server-ca');
    clientCa = await createCA('console-client-ca');
    const server = await issueCertificate(serverCa, { commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    target = await startMtlsTarget({ server, clientCa: clientCa.certPem });
    relay = await startRelay({ targetCaPem: serverCa.certPem });
    const secret = relay.env['AUTH_JWT_SECRET'] as string;
    adminToken = (relay.auth()['authorization'] as string).replace(/^Bearer /, '');
    scopedToken = await mintToken({ secret, roles: ['admin'], accounts: [account], ttlSeconds: 3600, subject: 'console-operator' });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // As root (CI): no sandbox. Host names resolve to nothing: Debian's build (with its Google API keys) would
      // otherwise ask DNS for Google's hosts at start; the page itself uses 127.0.0.1 only.
      args: ['--no-sandbox', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
    });
    files = mkdtempSync(join(tmpdir(), 'mtls-relay-console-'));
    // Certificates already there, one per expiry colour but "within 14" (that one the browser uploads).
    await seedCertificate('partner-eu', 200.5, ['api.partner-eu.test']);
    await seedCertificate('billing-gateway', 25.5, ['billing.partner.test', '*.billing.partner.test']);
    await seedCertificate('legacy-sftp-bridge', 5.5, []);
  });

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    await target?.close();
    if (files !== undefined) rmSync(files, { recursive: true, force: true });
  });

  it('serves the page and its assets with a strict Content-Security-Policy; /mtls/whoami tells a token its accounts', async () => {
    const page = await request(`${relay.api.url}/console`);
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toBe(CONSOLE_CSP);
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'none'", "base-uri 'none'"]) expect(csp).toContain(directive);
    expect(csp).not.toMatch(/unsafe|\*|https?:/);
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    const html = await page.body.text();
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//); // no CDN: every asset from the relay
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/); // no inline script
    expect(html).not.toMatch(/\sstyle=|<style/); // no inline style
    const script = await request(`${relay.api.url}/console/console.js`);
    expect(script.statusCode).toBe(200);
    expect(script.headers['content-type']).toMatch(/javascript/);
    expect(script.headers['content-security-policy']).toBe(CONSOLE_CSP);
    await script.body.dump();
    // Only the console's own files: nothing else of the folder or beyond, and /console/ is not the page.
    for (const path of ['/console/index.html', '/console/..%2Froutes%2Fconsole.ts', '/console/', '/console/nope.js']) {
      const other = await request(`${relay.api.url}${path}`, { headers: relay.auth() });
      expect(other.statusCode, path).toBe(404);
      await other.body.dump();
    }

    const admin = await call('GET', '/mtls/whoami');
    expect(admin.status).toBe(200);
    expect(admin.json).toEqual({ id: 'e2e-admin', kind: 'jwt', accounts: '*', permissions: ['MTLS_READ_INTERNAL', 'MTLS_WRITE_INTERNAL'], administrator: true });
    const scoped = await call('GET', '/mtls/whoami', undefined, scopedToken);
    expect(scoped.json).toMatchObject({ id: 'console-operator', accounts: [account], administrator: false });
    const anonymous = await request(`${relay.api.url}/mtls/whoami`);
    expect(anonymous.statusCode).toBe(401);
    await anonymous.body.dump();
  });

  it('an operator signs in, uploads a certificate and sees its expiry colour, a bad upload in words, mappings, the check, settings and a job', async () => {
    const w = await openConsole();
    const { page } = w;
    await signIn(page, adminToken, account);
    // The token stays in the tab: sessionStorage, no cookie, never in a URL.
    expect(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY)).toBe(adminToken);
    expect(await page.locator('#who-text').textContent()).toContain('every account');
    expect(await page.locator('#link-queues').isVisible()).toBe(true);
    expect(await page.locator('#link-docs').getAttribute('href')).toBe('docs');
    await rowOf(page, 'cert-table', 'partner-eu').waitFor();
    expect(await page.locator('#cert-table tbody tr').count()).toBe(3);

    // Upload a PEM pair from files, expiring in 10 days: listed "within 14 days" (orange).
    const leaf = await issueCertificate(clientCa, { commonName: 'orders-api', usage: 'client', notAfter: new Date(Date.now() + 10.5 * DAY_MS) });
    writeFileSync(join(files, 'orders-api.pem'), leaf.chainPem);
    writeFileSync(join(files, 'orders-api.key'), leaf.keyPem);
    await page.fill('#upload-name', 'orders-api');
    await page.fill('#upload-hostnames', 'orders.partner.test, *.orders.partner.test');
    await page.setInputFiles('#upload-cert-file', join(files, 'orders-api.pem'));
    await page.setInputFiles('#upload-key-file', join(files, 'orders-api.key'));
    await vi.waitFor(async () => expect(await page.inputValue('#upload-key')).toContain('PRIVATE KEY'), { timeout: 10_000, interval: 50 });
    await page.click('#upload-form button[type=submit]');
    await page.locator('#upload-ok', { hasText: 'Uploaded "orders-api".' }).waitFor();
    const uploaded = rowOf(page, 'cert-table', 'orders-api');
    await uploaded.waitFor();
    expect(await uploaded.locator('.kind').textContent()).toBe('client');
    expect(await uploaded.locator('.hostnames').textContent()).toBe('orders.partner.test, *.orders.partner.test');
    const fingerprint = leaf.fingerprint256.replace(/:/g, '').toLowerCase();
    expect(await uploaded.locator('.fingerprint code').getAttribute('title')).toBe(fingerprint);
    const badge = uploaded.locator('.expiry');
    expect(await badge.textContent()).toBe('10 days left');
    expect(await badge.getAttribute('data-level')).toBe('14');
    expect(await badge.evaluate((el) => el.ownerDocument.defaultView.getComputedStyle(el).backgroundColor)).toBe('rgb(255, 224, 191)');
    // The other colours: more than 30 days, within 30, within 7.
    expect(await rowOf(page, 'cert-table', 'partner-eu').locator('.expiry').getAttribute('data-level')).toBe('ok');
    expect(await rowOf(page, 'cert-table', 'billing-gateway').locator('.expiry').getAttribute('data-level')).toBe('30');
    expect(await rowOf(page, 'cert-table', 'legacy-sftp-bridge').locator('.expiry').getAttribute('data-level')).toBe('7');
    expect(await rowOf(page, 'cert-table', 'legacy-sftp-bridge').locator('.expiry').evaluate((el) => el.ownerDocument.defaultView.getComputedStyle(el).backgroundColor)).toBe('rgb(255, 214, 217)');
    // The README's picture of the certificates page.
    mkdirSync(join(ROOT, '.data'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // A bad upload: the API's error, in words, with its code.
    await page.fill('#upload-name', 'broken');
    await page.fill('#upload-cert', 'this is not a certificate');
    await page.fill('#upload-key', 'nor a key');
    await page.click('#upload-form button[type=submit]');
    const uploadError = page.locator('#upload-error');
    await uploadError.waitFor({ state: 'visible' });
    expect(await uploadError.textContent()).toBe('The certificate was not uploaded: certificate: no PEM certificate found (12002)');
    expect(await page.locator('#cert-table tbody tr').count()).toBe(4);

    // Mappings: create one (picking the certificate), check it, delete it.
    await page.click('.tabs a[data-tab=mappings]');
    await page.locator('#mapping-empty').waitFor({ state: 'visible' });
    const mappedUrl = `${target.url.replace('localhost', '127.0.0.1')}/orders`;
    await page.fill('#mapping-service', 'orders');
    await page.fill('#mapping-url', mappedUrl);
    await page.selectOption('#mapping-cert', { label: 'orders-api' });
    await page.click('#mapping-form button[type=submit]');
    await page.locator('#mapping-ok', { hasText: 'Mapped to "orders-api".' }).waitFor();
    const mappingRow = rowOf(page, 'mapping-table', 'orders');
    await mappingRow.waitFor();
    expect(await mappingRow.locator('.certificate').textContent()).toBe('orders-api');
    expect(await mappingRow.locator('.url').textContent()).toBe(mappedUrl);

    await page.fill('#check-service', 'orders');
    await page.fill('#check-url', mappedUrl);
    await page.click('#check-form button[type=submit]');
    await page.locator('#check-result[data-exists=true]').waitFor();
    expect(await page.locator('#check-result').textContent()).toMatch(/^Yes: a forward \(service "orders" → .*\/orders\) would be sent with a valid certificate\.$/);
    await page.fill('#check-service', 'other');
    await page.fill('#check-url', 'https://nowhere.partner.test/');
    await page.click('#check-form button[type=submit]');
    await page.locator('#check-result[data-exists=false]').waitFor();
    expect(await page.locator('#check-result').textContent()).toMatch(/^No: /);

    // A forward through the mapping, then the job looked up by its id.
    const forward = await request(`${relay.api.url}/mtls/account/${account}`, { headers: { authorization: `Bearer ${adminToken}`, 'lp-forward-url': mappedUrl, 'lp-service-name': 'orders' } });
    expect(forward.statusCode).toBe(200);
    await forward.body.dump();
    const jobId = String(forward.headers['lp-job-id']);
    await page.click('.tabs a[data-tab=jobs]');
    await page.fill('#job-id', jobId);
    await page.click('#job-form button[type=submit]');
    await page.locator('#job-result').waitFor({ state: 'visible' });
    const field = (name: string) => page.locator(`#job-result dd[data-field="${name}"]`).textContent();
    expect(await field('state')).toBe('completed');
    expect(await field('attempts')).toBe('1');
    expect(await field('target-status')).toBe('200');
    expect(await field('mtls')).toMatch(/^used \(certificate .+\)$/);
    expect(await field('error-code')).toBe('—');
    await page.fill('#job-id', randomUUID());
    await page.click('#job-form button[type=submit]');
    await page.locator('#job-error', { hasText: 'No job' }).waitFor();

    // A certificate in use is not deleted: the API's 409, in words.
    await page.click('.tabs a[data-tab=certificates]');
    await rowOf(page, 'cert-table', 'orders-api').locator('button.danger').click();
    await page.click('#confirm-yes');
    await page.locator('#cert-error', { hasText: 'Could not delete "orders-api"' }).waitFor();
    expect(await page.locator('#cert-error').textContent()).toContain('(12007)');

    await page.click('.tabs a[data-tab=mappings]');
    await mappingRow.locator('button.danger').click();
    await page.click('#confirm-yes');
    await page.locator('#mapping-empty').waitFor({ state: 'visible' });
    expect(await page.locator('#mapping-table tbody tr').count()).toBe(0);
    expect((await call('GET', `/mtls/account/${account}/mappings`)).json).toEqual([]);

    // Hostname settings: add one, save, and the API has it.
    await page.click('.tabs a[data-tab=settings]');
    await page.click('#settings-add');
    await page.fill('#settings-table tbody tr:last-child input.hostname', 'orders.partner.test');
    await page.check('#settings-table tbody tr:last-child input.forwarding');
    await page.click('#settings-form button[type=submit]');
    await page.locator('#settings-ok', { hasText: 'Saved (1 hostname).' }).waitFor();
    expect((await call('GET', `/accounts/${account}/access/certificates/settings`)).json?.['result']).toEqual([
      { hostname: 'orders.partner.test', china_network: false, client_certificate_forwarding: true },
    ]);

    // The token was typed once: a reload keeps the tab signed in, on the same account.
    await page.reload();
    await page.locator('#page-settings').waitFor({ state: 'visible' });
    expect(await page.locator('#login').isVisible()).toBe(false);
    expect(await page.locator('#account-input').inputValue()).toBe(account);

    // Edit / rotate: a new pair and a new hostname list.
    await page.click('.tabs a[data-tab=certificates]');
    const renewed = await issueCertificate(clientCa, { commonName: 'orders-api', usage: 'client', notAfter: new Date(Date.now() + 90.5 * DAY_MS) });
    await rowOf(page, 'cert-table', 'orders-api').locator('button.secondary').click();
    await page.fill('#rotate-hostnames', 'orders.partner.test');
    await page.fill('#rotate-cert', renewed.chainPem);
    await page.fill('#rotate-key', renewed.keyPem);
    await page.click('#rotate-form button[type=submit]');
    await page.locator('#rotate').waitFor({ state: 'hidden' });
    await rowOf(page, 'cert-table', 'orders-api').locator('.expiry', { hasText: '90 days left' }).waitFor();
    expect(await rowOf(page, 'cert-table', 'orders-api').locator('.expiry').getAttribute('data-level')).toBe('ok');

    // Nothing was sent elsewhere, the token was never in a URL, and the relay set no cookie.
    await w.settle();
    expect(w.offsite).toEqual([]);
    expect(w.urls.filter((u) => u.includes(adminToken))).toEqual([]);
    expect(w.setCookies).toEqual([]);
    expect(await w.context.cookies()).toEqual([]);
    expect(w.violations).toEqual([]);
    expect(w.checked).toBeGreaterThanOrEqual(25);
    expect(w.errors).toEqual([]);

    // The policy holds: a script injected into the page does not run.
    const ran = await page.evaluate(`(() => {
      const s = document.createElement('script');
      try {
        s.textContent = 'window.injected = true';
      } catch {
        return 'refused by Trusted Types';
      }
      document.body.append(s);
      return window.injected === true ? 'ran' : 'blocked';
    })()`);
    expect(ran).not.toBe('ran');
    await w.context.close();
  });

  it('the expiry colours follow the expiry check: the smallest of 30, 14 and 7 days that the time left falls within, expired at the date', async () => {
    const w = await openConsole();
    await w.page.goto(`${relay.api.url}/console`);
    // The page's own module, in the browser, at fixed instants.
    const levels = await w.page.evaluate(`import('./console/certificates.js').then(({ expiryOf }) => {
      const now = Date.parse('2030-01-01T00:00:00Z');
      const at = (days) => expiryOf(new Date(now + days * ${DAY_MS}).toISOString(), now);
      return [400, 30.01, 30, 14.5, 14, 7.01, 7, 1.5, 0.5, 0, -3].map((d) => [d, at(d).level, at(d).text]);
    })`);
    expect(levels).toEqual([
      [400, 'ok', '400 days left'],
      [30.01, 'ok', '30 days left'],
      [30, '30', '30 days left'],
      [14.5, '30', '14 days left'],
      [14, '14', '14 days left'],
      [7.01, '14', '7 days left'],
      [7, '7', '7 days left'],
      [1.5, '7', '1 day left'],
      [0.5, '7', 'less than a day left'],
      [0, 'expired', 'expired'],
      [-3, 'expired', 'expired'],
    ]);
    await w.settle();
    expect(w.errors).toEqual([]);
    await w.context.close();
  });

  it('a token scoped to one account opens it, is told in words that another is not allowed, and sees no queue link', async () => {
    const w = await openConsole();
    const { page } = w;
    await signIn(page, scopedToken, '');
    await rowOf(page, 'cert-table', 'partner-eu').waitFor();
    expect(await page.locator('#account-input').inputValue()).toBe(account);
    expect(await page.locator('#who-text').textContent()).toBe(`console-operator · account ${account} · read and write`);
    expect(await page.locator('#link-queues').isVisible()).toBe(false);

    await page.fill('#account-input', 'someone-else');
    await page.click('#account-form button[type=submit]');
    await page.locator('#cert-error', { hasText: 'these credentials may not act on account someone-else' }).waitFor();
    expect(await page.locator('#cert-error').textContent()).toBe('Not allowed: these credentials may not act on account someone-else (10001)');
    expect(await page.locator('#cert-table tbody tr').count()).toBe(0);

    // Signing out forgets the token at once.
    await page.click('#sign-out');
    await page.locator('#login').waitFor({ state: 'visible' });
    expect(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY)).toBeNull();

    // An expired or wrong token: back to the sign-in form, with the reason.
    await page.evaluate((k) => sessionStorage.setItem(k, 'not-a-token'), TOKEN_KEY);
    await page.reload();
    await page.locator('#login-error', { hasText: 'The relay refused the token' }).waitFor();
    expect(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY)).toBeNull();

    await w.settle();
    expect(w.offsite).toEqual([]);
    expect(w.violations).toEqual([]);
    expect(w.errors).toEqual([]);
    await w.context.close();
  });
});
