import express from 'express';
import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import { RelayError } from '@mtls-relay/shared/errors';
import type { CertificateStore } from '@mtls-relay/shared/store';
import { parseTargetUrl } from '@mtls-relay/shared/url';
import { accountOf } from '../auth/access.ts';
import { parseBody } from '../body.ts';

export interface MappingRouteDeps {
  store: CertificateStore;
  allowHttp: boolean;
}

const BASE = '/mtls/account/:accountId/mappings';

const createSchema = z.object({
  serviceName: z.string().trim().max(256),
  url: z.string().min(1).max(4096),
  certificateId: z.string().min(1).max(64),
});

/**
 * `/mtls/account/{accountId}/mappings`: which certificate a (serviceName, url) of the account uses.
 * One mapping per (account, service, normalised url); its id is derived from that pair.
 */
export function mappingsRouter(deps: MappingRouteDeps): Router {
  const router = express.Router();
  const json = express.json({ limit: '64kb', type: () => true });

  router.get(BASE, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res);
    res.setHeader('Cache-Control', 'no-store');
    res.json(await deps.store.listMappings(accountId));
  });

  router.post(BASE, json, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res);
    const body = parseBody(createSchema, req.body);
    try {
      parseTargetUrl(body.url, { allowHttp: deps.allowHttp });
    } catch (err) {
      throw new RelayError('invalid_body', `url: ${(err as RelayError).detail.replace(/^LP-forward-url /, '')}`);
    }
    const created = await deps.store.createMapping(accountId, body);
    res.status(201);
    res.setHeader('Location', `/mtls/account/${accountId}/mappings/${created.id}`);
    res.json(created);
  });

  router.get(`${BASE}/:mappingId`, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res);
    const id = String(req.params['mappingId']);
    const found = await deps.store.getMapping(accountId, id);
    if (found === null) throw new RelayError('not_found', `mapping ${id} not found`);
    res.setHeader('Cache-Control', 'no-store');
    res.json(found);
  });

  router.delete(`${BASE}/:mappingId`, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res);
    await deps.store.deleteMapping(accountId, String(req.params['mappingId']));
    res.status(204).end();
  });

  return router;
}
