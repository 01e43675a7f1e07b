import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import express from 'express';
import type { Router } from 'express';
import { errorDocsPage } from '../error-docs.ts';
import { openApiDocument } from '../openapi/document.ts';

const ASSETS = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
const SERVED = new Set(['swagger-ui.css', 'swagger-ui-bundle.js', 'swagger-ui-standalone-preset.js', 'favicon-32x32.png']);

// Relative URLs: the page works behind a reverse proxy that mounts the relay under a path prefix.
const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>mtls-relay API</title><link rel="stylesheet" href="docs/swagger-ui.css"><link rel="icon" href="docs/favicon-32x32.png"></head>
<body><div id="ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: 'openapi.json', dom_id: '#ui', deepLinking: true });</script>
</body>
</html>
`;

/**
 * `GET /openapi.json` (the OpenAPI 3.1 document), `GET /docs` (it, rendered by Swagger UI, served from the
 * swagger-ui-dist package: no CDN) and `GET /docs/errors` (every error code, the target of the Cloudflare
 * envelope's `documentation_url`). Open, like the health routes: they hold no secret.
 */
export function docsRouter(): Router {
  const router = express.Router();
  router.get('/openapi.json', (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.json(openApiDocument());
  });
  router.get('/docs', (_req, res) => {
    res.type('html').send(PAGE);
  });
  router.get('/docs/errors', (_req, res) => {
    res.setHeader('Cache-Control', 'public, max-age=3600');
    res.type('html').send(errorDocsPage());
  });
  router.get('/docs/:asset', (req, res, next) => {
    const asset = String(req.params['asset']);
    if (!SERVED.has(asset)) {
      next();
      return;
    }
    res.setHeader('Cache-Control', 'public, max-age=86400');
    res.sendFile(asset, { root: ASSETS });
  });
  return router;
}
