#!/usr/bin/env node
/* global URL, console */
// Some npm registry mirrors carry only the linux builds of platform-specific optional packages (turbo,
// msgpackr-extract…). `npm install` then writes a lock without the other platforms' entries, and `npm ci`
// refuses that lock. This adds the missing entries (name, version, os/cpu, optional) so that `npm ci` works on
// every platform: npm skips them where os/cpu do not match and fetches them by name where they do.
// Plain JavaScript so that it runs on any Node: `node scripts/fix-lock-platforms.mjs` after `npm install`.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const pkgs = lock.packages;

function platformOf(name) {
  const n = name.toLowerCase();
  const os = n.includes('darwin') ? 'darwin' : n.includes('win32') || n.includes('windows') ? 'win32' : n.includes('linux') ? 'linux' : n.includes('freebsd') ? 'freebsd' : undefined;
  const cpu = /arm64|aarch64/.test(n) ? 'arm64' : /-arm(\b|$)|armv7|-arm-/.test(n) || n.endsWith('-arm') ? 'arm' : /x64|-64|amd64/.test(n) ? 'x64' : /ia32|x86/.test(n) ? 'ia32' : undefined;
  return { os, cpu };
}

function resolves(from, dep) {
  let base = from;
  for (;;) {
    if (pkgs[`${base ? `${base}/` : ''}node_modules/${dep}`]) return true;
    if (!base) return false;
    const i = base.lastIndexOf('/node_modules/');
    base = i >= 0 ? base.slice(0, i) : '';
  }
}

let added = 0;
for (const [path, meta] of Object.entries(pkgs)) {
  for (const [dep, version] of Object.entries(meta.optionalDependencies ?? {})) {
    if (resolves(path, dep)) continue;
    const { os, cpu } = platformOf(dep);
    if (os === undefined || cpu === undefined) continue; // not a platform build: leave it to npm
    // Hoisted like npm does when the top-level place is free; nested under the dependent otherwise.
    const top = `node_modules/${dep}`;
    pkgs[pkgs[top] === undefined ? top : `${path}/node_modules/${dep}`] = {
      version: String(version).replace(/^[^0-9]*/, ''),
      ...(meta.dev ? { dev: true } : {}),
      optional: true,
      os: [os],
      cpu: [cpu],
    };
    added++;
  }
}
const sorted = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
lock.packages = sorted;
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: added ${added} platform entr${added === 1 ? 'y' : 'ies'}`);
