/** The README and docker-compose.yml tell the truth about the configuration the code accepts. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../packages/shared/src/config.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const compose = readFileSync(new URL('../docker-compose.yml', import.meta.url), 'utf8');

describe('documentation', () => {
  it.each([...CONFIG_VARIABLES])('the README documents %s', (name) => {
    expect(readme).toContain(`\`${name}\``);
  });

  it('every relay setting docker-compose.yml sets is one the configuration accepts', () => {
    const relayBlock = compose.slice(compose.indexOf('x-relay-env'), compose.indexOf('services:'));
    const names = [...relayBlock.matchAll(/^\s{2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]);
    expect(names.length).toBeGreaterThan(5);
    for (const name of names) expect(CONFIG_VARIABLES).toContain(name);
  });
});
