import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createLogger, isoTime, LineBuffer } from './logging.ts';

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

describe('the buffered destination (LineBuffer)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'line-buffer-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes nothing until 16 KiB gather or it is flushed, then every line whole and in order', () => {
    const path = join(dir, 'out.log');
    const fd = openSync(path, 'w');
    const out = new LineBuffer(fd);
    try {
      const logger = createLogger({ name: 'test', level: 'info' }, out);
      logger.info({ n: 0, text: 'žluťoučký kůň ✓' }, 'first');
      expect(readFileSync(path, 'utf8')).toBe('');
      for (let n = 1; n < 400; n++) logger.info({ n }, 'line');
      const early = readFileSync(path, 'utf8');
      expect(early.length).toBeGreaterThanOrEqual(16 * 1024);
      expect(early.endsWith('\n')).toBe(true);
      logger.flush();
      const lines = readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { n: number; text?: string });
      expect(lines.map((l) => l.n)).toEqual(Array.from({ length: 400 }, (_, n) => n));
      expect(lines[0]?.text).toBe('žluťoučký kůň ✓');
    } finally {
      out.end();
      closeSync(fd);
    }
  });

  it('writes a line larger than its buffer after what came before it', () => {
    const path = join(dir, 'big.log');
    const fd = openSync(path, 'w');
    const out = new LineBuffer(fd);
    try {
      out.write('{"a":1}\n');
      const big = `{"big":"${'x'.repeat(100_000)}"}\n`;
      out.write(big);
      out.write('{"b":2}\n');
      out.flushSync();
      expect(readFileSync(path, 'utf8')).toBe(`{"a":1}\n${big}{"b":2}\n`);
    } finally {
      out.end();
      closeSync(fd);
    }
  });

  it('writes what is gathered within 100 ms, and everything when the process exits', async () => {
    // The child logs one line, then waits for the parent's "go" (sent once that line has arrived: only the periodic
    // write can bring it), or 5 s without it; then it logs 50 lines and exits at once (only the exit write brings them).
    const script = [
      `import { createLogger } from ${JSON.stringify(new URL('./logging.ts', import.meta.url).href)};`,
      "const logger = createLogger({ name: 'child', level: 'info' });",
      "logger.info('before the pause');",
      "await new Promise((r) => { process.stdin.once('data', r); setTimeout(r, 5_000).unref(); });",
      "for (let n = 0; n < 50; n++) logger.info({ n }, 'at exit');",
      'process.exit(3);',
    ].join('\n');
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    let text = '';
    let wentOn = false;
    child.stdin.on('error', () => undefined);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      if (!wentOn && text.includes('before the pause')) {
        // Alone: the child is still waiting for this "go" (with the exit lines, it gave up waiting).
        wentOn = !text.includes('at exit');
        child.stdin.end('go');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(3);
    expect(wentOn).toBe(true);
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(51);
    expect(lines[0]).toContain('before the pause');
    expect(lines.slice(1).map((l) => (JSON.parse(l) as { n: number }).n)).toEqual(Array.from({ length: 50 }, (_, n) => n));
  });
});
