/**
 * One HTTP(S) request with any headers, on a fresh connection (no agent): for tests that send
 * what a proxy, an attacker or an admin would (X-Forwarded-*, Authorization, odd Cookie headers).
 */
import http from 'node:http';
import https from 'node:https';
import type { HttpResponse } from './http.js';

export interface RequestOptions {
  headers?: http.OutgoingHttpHeaders;
  /** HTTPS (self-signed certificates accepted: loopback tests only). */
  tls?: boolean;
}

/** GET http(s)://127.0.0.1:<port><path> with `headers`. */
export function request(port: number, path: string, options: RequestOptions = {}): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const params = { host: '127.0.0.1', port, path, agent: false as const, headers: options.headers ?? {} };
    const onResponse = (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          headers: res.headers,
          setCookie: res.headers['set-cookie'] ?? [],
        }),
      );
    };
    const req = options.tls
      ? https.get({ ...params, rejectUnauthorized: false }, onResponse)
      : http.get(params, onResponse);
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path} on port ${port} timed out`)));
  });
}
