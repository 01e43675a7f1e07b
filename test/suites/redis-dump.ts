/** Reads every key of a Redis database, whatever its type, into one searchable text (for secret-at-rest checks). */
import type { Redis } from 'ioredis';

export async function dumpRedis(client: Redis): Promise<{ keys: number; text: string }> {
  const parts: string[] = [];
  let cursor = '0';
  let keys = 0;
  do {
    const [next, batch] = await client.scanBuffer(cursor, 'COUNT', 1000);
    cursor = next.toString();
    for (const keyBuf of batch) {
      keys++;
      const key = keyBuf.toString('latin1');
      const type = await client.type(key);
      let values: Buffer[] = [];
      if (type === 'string') values = [(await client.getBuffer(key)) ?? Buffer.alloc(0)];
      else if (type === 'hash') values = Object.entries(await client.hgetallBuffer(key)).flatMap(([k, v]) => [Buffer.from(k), v]);
      else if (type === 'set') values = await client.smembersBuffer(key);
      else if (type === 'list') values = await client.lrangeBuffer(key, 0, -1);
      else if (type === 'zset') values = await client.zrangeBuffer(key, '0', '-1');
      else if (type === 'stream') values = (await client.xrangeBuffer(key, '-', '+')).flatMap(([id, fields]) => [id, ...fields]);
      parts.push(key, ...values.map((v) => v.toString('latin1')));
    }
  } while (cursor !== '0');
  return { keys, text: parts.join('\n') };
}

/** The base64 lines of a PEM block (header and footer left out): what a leaked key would contain. */
export function pemBodyLines(pem: string): string[] {
  return pem
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length >= 16 && !l.startsWith('-----'));
}
