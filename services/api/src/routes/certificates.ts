import express from 'express';
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import multer from 'multer';
import { z } from 'zod';
import { RelayError } from '@mtls-relay/shared/errors';
import type { CertificateInfo, CertificateStore } from '@mtls-relay/shared/store';
import { accountOf } from '../auth/access.ts';
import { parseBody } from '../body.ts';
import { paginate, parsePagination, sendCfResult } from '../cloudflare.ts';
import { pemFromPkcs12 } from '../pkcs12.ts';

export interface CertificateRouteDeps {
  store: CertificateStore;
}

export const BASE = '/accounts/:account_id/access/certificates';

const name = z.string().trim().min(1).max(255);
const pem = (max: number) => z.string().min(1).max(max);
const hostnames = z.array(z.string().max(300)).max(100);
// The material: a PEM certificate (with private_key: a client; without: a root), or a PKCS#12 file.
const material = {
  certificate: pem(200_000).optional(),
  private_key: pem(100_000).optional(),
  pkcs12: z.string().min(1).max(1_400_000).optional(),
  passphrase: z.string().max(1024).optional(),
};

const createSchema = z.object({ name, ...material, associated_hostnames: hostnames.optional() });
const updateSchema = z.object({ name: name.optional(), associated_hostnames: hostnames, ...material });
// A multipart form cannot send an empty list: there, associated_hostnames left out keeps the current ones.
const multipartUpdateSchema = updateSchema.extend({ associated_hostnames: hostnames.optional() });

const P12_MAX_BYTES = 1_000_000;
const P12_FIELDS = ['pkcs12', 'file'] as const;

/** The Cloudflare result shape (plus read-only extras). Never carries the private key. */
export function certificateResult(c: CertificateInfo): Record<string, unknown> {
  return {
    id: c.id,
    name: c.name,
    type: c.type ?? 'client',
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

/** JSON, or multipart/form-data with a .p12/.pfx file (kept in memory, never on disk). */
function bodyReader(): RequestHandler {
  const json = express.json({ limit: '2mb', type: () => true });
  const upload = multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: P12_MAX_BYTES, files: 1, fields: 110, fieldSize: 200_000, parts: 112 },
  }).fields(P12_FIELDS.map((f) => ({ name: f, maxCount: 1 })));
  return (req: Request, res: Response, next: NextFunction) => {
    if (!req.is('multipart/form-data')) {
      json(req, res, next);
      return;
    }
    upload(req, res, (err?: unknown) => {
      if (err === undefined || err === null) {
        next();
        return;
      }
      const e = err as { code?: unknown; field?: unknown };
      if (e.code === 'LIMIT_FILE_SIZE') {
        next(new RelayError('body_too_large', `the PKCS#12 file is larger than ${P12_MAX_BYTES} bytes`, { pointer: `/${String(e.field)}` }));
      } else if (e.code === 'LIMIT_UNEXPECTED_FILE' || e.code === 'LIMIT_FILE_COUNT') {
        next(new RelayError('invalid_body', `one file is accepted, in the field ${P12_FIELDS.join(' or ')}`, typeof e.field === 'string' ? { pointer: `/${e.field}` } : {}));
      } else {
        // Never the parser's message: it may quote the body.
        next(new RelayError('invalid_body', 'the multipart/form-data body could not be read'));
      }
    });
  };
}

interface Upload {
  /** The multipart fields (strings, or lists for repeated fields) or the JSON body. */
  body: unknown;
  /** The uploaded file and its field, in a multipart request. */
  file: { field: string; data: Buffer } | undefined;
  multipart: boolean;
}

function uploadOf(req: Request): Upload {
  if (!req.is('multipart/form-data')) return { body: req.body, file: undefined, multipart: false };
  const files = (req.files ?? {}) as Record<string, Express.Multer.File[] | undefined>;
  const field = P12_FIELDS.find((f) => (files[f]?.length ?? 0) > 0);
  const fields = { ...(req.body as Record<string, unknown>) };
  // `associated_hostnames` may come once, repeated, or as `associated_hostnames[]`; one name is a list of one.
  const hosts = fields['associated_hostnames'];
  if (typeof hosts === 'string') fields['associated_hostnames'] = [hosts];
  return { body: fields, file: field === undefined ? undefined : { field, data: (files[field]?.[0] as Express.Multer.File).buffer }, multipart: true };
}

const BASE64 = /^(?:[A-Za-z0-9+/]|\s)*={0,2}\s*$|^[A-Za-z0-9_-]*={0,2}$/;

/** The PEM certificate and key (no key: a root) from whichever form the material came in; undefined when none. */
type MaterialFields = { [K in keyof typeof material]?: string | undefined };

function pemMaterial(body: MaterialFields, upload: Upload): { certificate: string; privateKey?: string } | undefined {
  const p12 = upload.file?.data ?? (body.pkcs12 === undefined ? undefined : decodeBase64(body.pkcs12));
  if (p12 !== undefined) {
    for (const field of ['certificate', 'private_key'] as const) {
      if (body[field] !== undefined) throw new RelayError('invalid_body', `${field}: send either certificate (with private_key) or pkcs12, not both`, { pointer: `/${field}` });
    }
    if (upload.file !== undefined && body.pkcs12 !== undefined) throw new RelayError('invalid_body', 'pkcs12: send the file or the base64 field, not both', { pointer: '/pkcs12' });
    return pemFromPkcs12(p12, body.passphrase ?? '', `/${upload.file?.field ?? 'pkcs12'}`);
  }
  if (body.passphrase !== undefined) throw new RelayError('invalid_body', 'passphrase: only with pkcs12', { pointer: '/passphrase' });
  if (body.certificate === undefined) {
    if (body.private_key !== undefined) throw new RelayError('invalid_body', 'certificate: required with private_key', { pointer: '/certificate' });
    return undefined;
  }
  return { certificate: body.certificate, ...(body.private_key === undefined ? {} : { privateKey: body.private_key }) };
}

function decodeBase64(text: string): Buffer {
  if (!BASE64.test(text)) throw new RelayError('invalid_body', 'pkcs12: not base64', { pointer: '/pkcs12' });
  return Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
}

/**
 * `/accounts/{account_id}/access/certificates[/{certificate_id}]` in Cloudflare's Access mTLS shape.
 * Register the settings router first: `settings` is not a certificate id.
 */
export function certificatesRouter(deps: CertificateRouteDeps): Router {
  const router = express.Router();
  const read = bodyReader();

  router.post(BASE, read, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res, 'account_id');
    const upload = uploadOf(req);
    const body = parseBody(createSchema, upload.body);
    if (upload.multipart && upload.file === undefined && body.pkcs12 === undefined && body.certificate === undefined) {
      throw new RelayError('invalid_body', `pkcs12: a multipart upload needs the .p12/.pfx file, in the field ${P12_FIELDS.join(' or ')}`, { pointer: '/pkcs12' });
    }
    const pemIn = pemMaterial(body, upload);
    if (pemIn === undefined) {
      throw new RelayError('invalid_body', 'certificate: required (a PEM certificate, with private_key for a client certificate), or pkcs12', { pointer: '/certificate' });
    }
    const created = await deps.store.createCertificate(accountId, {
      name: body.name,
      certificate: pemIn.certificate,
      ...(pemIn.privateKey === undefined ? {} : { privateKey: pemIn.privateKey }),
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

  router.put(`${BASE}/:certificate_id`, read, async (req: Request, res: Response) => {
    const accountId = accountOf(req, res, 'account_id');
    const id = String(req.params['certificate_id']);
    const upload = uploadOf(req);
    const body = parseBody(upload.multipart ? multipartUpdateSchema : updateSchema, upload.body);
    const pemIn = pemMaterial(body, upload);
    const updated = await deps.store.updateCertificate(accountId, id, {
      ...(body.associated_hostnames === undefined ? {} : { associatedHostnames: body.associated_hostnames }),
      ...(body.name === undefined ? {} : { name: body.name }),
      ...(pemIn === undefined ? {} : { certificate: pemIn.certificate }),
      ...(pemIn?.privateKey === undefined ? {} : { privateKey: pemIn.privateKey }),
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
