import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createLogger, isoTime } from './logging.ts';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, stream };
}

describe('log redaction', () => {
  it('blanks every secret path: credentials, override, cookies, bodies, keys, tokens and signatures', () => {
    const secret = 'S3CRET-value-that-must-not-appear';
    const { lines, stream } = capture();
    const logger = createLogger({ name: 'test', level: 'trace' }, stream);
    const headers = {
      authorization: secret,
      'proxy-authorization': secret,
      'lp-authorization-override': secret,
      cookie: secret,
      'set-cookie': [secret],
      'x-vault-token': secret,
    };
    logger.info({ req: { headers }, res: { headers }, headers }, 'request');
    logger.info({ err: { config: { headers } } }, 'client error');
    logger.info({ job: { body: secret, override: secret }, body: secret, override: secret }, 'job');
    logger.info({ certificate: { privateKey: secret, private_key: secret, keyPem: secret, pem: secret }, privateKey: secret }, 'cert');
    logger.info({ vault: { token: secret, secretId: secret, secret_id: secret, clientToken: secret, VAULT_TOKEN: secret, VAULT_SECRET_ID: secret }, token: secret }, 'vault');
    logger.info({ config: { MASTER_KEY: secret, masterKey: secret }, MASTER_KEY: secret }, 'config');
    logger.info({ oauth: { oauth_signature: secret, signature: secret, consumerSecret: secret, consumer_secret: secret }, bearer: { jwt: secret } }, 'auth');
    expect(lines).toHaveLength(7);
    for (const line of lines) {
      expect(line).not.toContain(secret);
      expect(line).toContain('[redacted]');
    }
  });
});

describe('log timestamps', () => {
  it("are pino's ISO time, the same within a millisecond and new in the next one", () => {
    const t = Date.parse('2026-12-07T03:40:00.123Z');
    expect(isoTime(t)).toBe(pino.stdTimeFunctions.isoTime().replace(/"time":"[^"]+"/, '"time":"2026-12-07T03:40:00.123Z"'));
    expect(isoTime(t)).toBe(',"time":"2026-12-07T03:40:00.123Z"');
    expect(isoTime(t + 1)).toBe(',"time":"2026-12-07T03:40:00.124Z"');
    const { lines, stream } = capture();
    createLogger({ name: 'test', level: 'info' }, stream).info('a line');
    const time = (JSON.parse(lines[0] ?? '{}') as { time?: string }).time ?? '';
    expect(new Date(time).toISOString()).toBe(time);
    expect(Math.abs(Date.parse(time) - Date.now())).toBeLessThan(5_000);
  });
});
