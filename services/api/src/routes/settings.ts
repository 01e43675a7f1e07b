import express from 'express';
import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import type { CertificateStore, HostnameSetting } from '@mtls-relay/shared/store';
import { parseBody } from '../body.ts';
import { sendCfResult } from '../cloudflare.ts';
import { accountOf } from '../auth/access.ts';
import { BASE } from './certificates.ts';

export interface SettingsRouteDeps {
  store: CertificateStore;
}

const PATH = `${BASE}/settings`;

const putSchema = z.object({
  settings: z
    .array(
      z.object({
        hostname: z.string().min(1).max(300),
        china_network: z.boolean(),
        client_certificate_forwarding: z.boolean(),
      }),
    )
    .max(1000),
});

const wire = (s: HostnameSetting): Record<string, unknown> => ({
  hostname: s.hostname,
  china_network: s.chinaNetwork,
  client_certificate_forwarding: s.clientCertificateForwarding,
});

/**
 * `GET | PUT /accounts/{account_id}/access/certificates/settings`: per-hostname settings in Cloudflare's shape.
 * `client_certificate_forwarding: true` makes forwards to that host demand a certificate; the PUT replaces
 * the whole list and answers 202 with it, as Cloudflare does.
 */
export function settingsRouter(deps: SettingsRouteDeps): Router {
  const router = express.Router();
  const json = express.json({ limit: '1mb', type: () => true });

  router.get(PATH, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res, 'account_id');
    const items = await deps.store.getSettings(accountId);
    sendCfResult(res, 200, items.map(wire));
  });

  router.put(PATH, json, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res, 'account_id');
    const body = parseBody(putSchema, req.body);
    const saved = await deps.store.putSettings(
      accountId,
      body.settings.map((s) => ({
        hostname: s.hostname,
        chinaNetwork: s.china_network,
        clientCertificateForwarding: s.client_certificate_forwarding,
      })),
    );
    sendCfResult(res, 202, saved.map(wire));
  });

  return router;
}
