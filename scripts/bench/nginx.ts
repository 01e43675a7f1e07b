// NGINX as an mTLS proxy to the bench target (one worker process, upstream keepalive), when nginx is installed.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../lib/ports.ts';
import type { Issued } from '../lib/pki.ts';

export interface Nginx {
  url: string;
  workerPid(): number | undefined;
  close(): Promise<void>;
}

export async function startNginx(opts: { targetPort: number; client: Issued; serverCaPem: string }): Promise<Nginx | undefined> {
  if (spawnSync('nginx', ['-v']).error !== undefined) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-'));
  writeFileSync(join(dir, 'client.pem'), opts.client.certPem);
  writeFileSync(join(dir, 'client.key'), opts.client.keyPem);
  writeFileSync(join(dir, 'ca.pem'), opts.serverCaPem);
  const port = await freePort();
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
daemon off;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream target { server 127.0.0.1:${opts.targetPort}; keepalive 256; }
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 1000000;
    location / {
      proxy_pass https://target;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate ${dir}/client.pem;
      proxy_ssl_certificate_key ${dir}/client.key;
      proxy_ssl_trusted_certificate ${dir}/ca.pem;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
    }
  }
}
`,
  );
  const master = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const workerPid = (): number | undefined => {
    const r = spawnSync('pgrep', ['-P', String(master.pid)], { encoding: 'utf8' });
    const pid = Number(r.stdout.trim().split('\n')[0]);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  };
  return {
    url: `http://127.0.0.1:${port}`,
    workerPid,
    close: async () => {
      master.kill('SIGQUIT');
      await new Promise((r) => master.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
