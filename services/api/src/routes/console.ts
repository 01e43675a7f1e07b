import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import express from 'express';
import type { Response, Router } from 'express';

const ASSETS = fileURLToPath(new URL('../console/', import.meta.url));
const PAGE = 'index.html';
// The files of the folder, read once: only these names are ever served (no path from the request reaches the disk).
const SERVED = new Set(readdirSync(ASSETS).filter((f) => f !== PAGE && /^[a-z][a-z0-9-]*\.(js|css|svg)$/.test(f)));

/**
 * The console's Content-Security-Policy: its own script, style and images only, no inline code, no eval,
 * Trusted Types enforced (the page builds its DOM with textContent, never markup from strings), API calls to
 * its own origin only, no forms posted anywhere, never framed.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

function secure(res: Response): void {
  res.setHeader('Content-Security-Policy', CONSOLE_CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  // Small files: revalidate each time, so that an upgraded relay serves its own script at once.
  res.setHeader('Cache-Control', 'no-cache');
}

/**
 * `GET /console`: the operator console, plain HTML, CSS and an ES module served from services/api/src/console
 * (no framework, no build step, no CDN). Open like /docs: the page holds no secret. Every call it makes goes
 * through the public API with the Bearer token the operator types, which stays in the tab (sessionStorage).
 */
export function consoleRouter(): Router {
  // Strict: `/console/` is not the page (its relative asset URLs would resolve under /console/console/).
  const router = express.Router({ strict: true });
  router.get('/console', (_req, res) => {
    secure(res);
    res.sendFile(PAGE, { root: ASSETS });
  });
  router.get('/console/:asset', (req, res, next) => {
    const asset = String(req.params['asset']);
    if (!SERVED.has(asset)) {
      next();
      return;
    }
    secure(res);
    res.sendFile(asset, { root: ASSETS });
  });
  return router;
}
