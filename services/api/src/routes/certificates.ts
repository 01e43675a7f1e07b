import express from 'express';
import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import { RelayError } from '@mtls-relay/shared/errors';
import type { CertificateInfo, CertificateStore } from '@mtls-relay/shared/store';
import { accountOf } from '../auth/access.ts';
import { parseBody } from '../body.ts';
import { paginate, parsePagination, sendCfResult } from '../cloudflare.ts';

export interface CertificateRouteDeps {
  store: CertificateStore;
}

export const BASE = '/accounts/:account_id/access/certificates';

const name = z.string().trim().min(1).max(255);
const pem = (max: number) => z.string().min(1).max(max);
const hostnames = z.array(z.string().max(300)).max(100);

const createSchema = z.object({
  name,
  certificate: pem(200_000),
  private_key: pem(100_000),
  associated_hostnames: hostnames.optional(),
});

const updateSchema = z.object({
  name: name.optional(),
  associated_hostnames: hostnames,
  certificate: pem(200_000).optional(),
  private_key: pem(100_000).optional(),
});

/** The Cloudflare result shape (plus read-only extras). Never carries the private key. */
export function certificateResult(c: CertificateInfo): Record<string, unknown> {
  return {
    id: c.id,
    name: c.name,
    fingerprint: c.fingerprint,
    expires_on: c.expiresOn,
    associated_hostnames: [...c.associatedHostnames],
    created_at: c.createdAt,
    updated_at: c.updatedAt,
    serial_number: c.serialNumber,
    issuer: c.issuer,
    not_before: c.notBefore,
  };
}

/**
 * `/accounts/{account_id}/access/certificates[/{certificate_id}]` in Cloudflare's Access mTLS shape.
 * Register the settings router first: `settings` is not a certificate id.
 */
export function certificatesRouter(deps: CertificateRouteDeps): Router {
  const router = express.Router();
  const json = express.json({ limit: '1mb', type: () => true });

  router.post(BASE, json, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res, 'account_id');
    const body = parseBody(createSchema, req.body);
    const created = await deps.store.createCertificate(accountId, {
      name: body.name,
      certificate: body.certificate,
      privateKey: body.private_key,
      associatedHostnames: body.associated_hostnames ?? [],
    });
    sendCfResult(res, 201, certificateResult(created));
  });

  router.get(BASE, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res, 'account_id');
    const { page, perPage } = parsePagination(req.query as Record<string, unknown>);
    const all = await deps.store.listCertificates(accountId);
    const { items, info } = paginate(all, page, perPage);
    sendCfResult(res, 200, items.map(certificateResult), info);
  });

  router.get(`${BASE}/:certificate_id`, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res, 'account_id');
    const id = String(req.params['certificate_id']);
    const found = await deps.store.getCertificate(accountId, id);
    if (found === null) throw new RelayError('not_found', `certificate ${id} not found`);
    sendCfResult(res, 200, certificateResult(found));
  });

  router.put(`${BASE}/:certificate_id`, json, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res, 'account_id');
    const id = String(req.params['certificate_id']);
    const body = parseBody(updateSchema, req.body);
    const updated = await deps.store.updateCertificate(accountId, id, {
      associatedHostnames: body.associated_hostnames,
      ...(body.name === undefined ? {} : { name: body.name }),
      ...(body.certificate === undefined ? {} : { certificate: body.certificate }),
      ...(body.private_key === undefined ? {} : { privateKey: body.private_key }),
    });
    sendCfResult(res, 200, certificateResult(updated));
  });

  router.delete(`${BASE}/:certificate_id`, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res, 'account_id');
    const id = String(req.params['certificate_id']);
    await deps.store.deleteCertificate(accountId, id);
    sendCfResult(res, 200, { id });
  });

  return router;
}
