import express from 'express';
import type { Router } from 'express';
import type { Registry } from 'prom-client';
import { principalOf } from '../auth/access.ts';

// A series line that names an account: `name{…,account_id="…",…} value`. Label values are escaped
// (`\\`, `\"`, `\n`) in the exposition format.
const ACCOUNT_LABEL = /[{,]account_id="((?:[^"\\]|\\.)*)"/;

const unescapeLabel = (value: string): string => value.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));

/**
 * Drops every series line whose `account_id` is not one of `accounts`. Per-tenant series (for example
 * certificate_expiry_days{account_id,certificate_id}) would otherwise show one tenant the account and
 * certificate ids of every other.
 */
export function onlyAccounts(text: string, accounts: ReadonlySet<string>): string {
  return text
    .split('\n')
    .filter((line) => {
      if (line.startsWith('#')) return true;
      const m = ACCOUNT_LABEL.exec(line);
      return m === null || accounts.has(unescapeLabel(m[1] as string));
    })
    .join('\n');
}

/**
 * `GET /metrics` (Prometheus text format). Mounted after authentication: any valid credentials may read it,
 * or nobody needs any with METRICS_PUBLIC=true (the authenticator then lets /metrics through). Series that
 * name an account are shown whole only to credentials that may act on every account (and with
 * METRICS_PUBLIC=true, which an operator sets for an in-cluster scraper); credentials limited to some
 * accounts see only those accounts' series.
 */
export function metricsRouter(registry: Registry): Router {
  const router = express.Router();
  router.get('/metrics', async (_req, res) => {
    const text = await registry.metrics();
    const accounts = principalOf(res)?.accounts ?? '*';
    res.setHeader('Content-Type', registry.contentType);
    res.setHeader('Cache-Control', 'no-store');
    res.end(accounts === '*' ? text : onlyAccounts(text, accounts));
  });
  return router;
}
