// A node's own calls to another node's API (joining, forwarding to the leader, a
// job's log from the node running it). In secure mode they go over HTTPS with this
// node's certificate as client certificate, which is how the far node knows a node is
// calling (src/api/roles.ts), and only to a node whose certificate names the node meant.
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { PassThrough, type Readable } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { HttpError } from './http.js';

/** On a node's call for its leader's GET /v1/cluster: answer from your own tables, ask nobody further. */
export const LEADER_VIEW_HEADER = 'x-workrs-leader-view';
/** A joining node's build (JSON of BuildInfo): a build from before versions sends none (docs/upgrading.md). */
export const BUILD_HEADER = 'x-workrs-build';

export interface NodeCall {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: string;
  /** No answer headers within this long: the call fails. */
  timeoutMs: number;
  /** Secure mode: how to reach the far node (its expected id is inside). */
  tls?: ConnectionOptions;
}

/** Starts a call to `api` ("host:port") and resolves at the answer's headers. */
export function callNode(api: string, path: string, call: NodeCall): Promise<IncomingMessage> {
  const url = `${call.tls ? 'https' : 'http'}://${api}${path}`;
  return new Promise((resolve, reject) => {
    const options = { method: call.method ?? 'GET', headers: call.headers ?? {}, ...(call.tls ?? {}) };
    const req = call.tls ? httpsRequest(url, { ...options, agent: false }, resolve) : httpRequest(url, options, resolve);
    req.setTimeout(call.timeoutMs, () => req.destroy(new Error(`no answer within ${call.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(call.body);
  });
}

/** A call whose answer is JSON (at most `maxBytes` of it read). */
export async function callNodeJson(api: string, path: string, call: NodeCall, maxBytes = 4 * 1024 * 1024): Promise<{ status: number; body: unknown }> {
  const res = await callNode(api, path, { ...call, headers: { 'content-type': 'application/json', ...call.headers } });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res) {
    size += (c as Buffer).length;
    if (size > maxBytes) {
      res.destroy();
      throw new Error(`the answer of ${api} is larger than ${maxBytes} bytes`);
    }
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the status tells
  }
  return { status: res.statusCode ?? 0, body };
}

/** The most of another node's error answer a proxied log request reads. */
const PROXY_ERROR_BODY_BYTES = 64 * 1024;

/**
 * A job's log from the node running it (`api`), as a stream that stays open while
 * the job runs when `follow`. Any failure is a 503 LOGS_UNAVAILABLE naming the node.
 */
export function proxyLogs(id: string, nodeId: string, api: string, read: { follow: boolean; sinceMs: number | null }, tls: ConnectionOptions | undefined): Promise<Readable> {
  const since = read.sinceMs === null ? '' : `&since=${(read.sinceMs / 1000).toFixed(3)}`;
  const path = `/v1/jobs/${encodeURIComponent(id)}/logs?local=1${read.follow ? '&follow=1' : ''}${since}`;
  const unavailable = (why: string): HttpError => new HttpError(503, 'LOGS_UNAVAILABLE', `the logs of ${id} are on ${nodeId}${why}`);
  // node:http, not fetch: a followed log may stay quiet for longer than fetch's body timeout.
  return new Promise((resolve, reject) => {
    const answered = (res: IncomingMessage): void => {
      if (res.statusCode === 200) {
        const out = new PassThrough();
        res.pipe(out);
        res.on('error', (err) => out.destroy(err));
        out.on('close', () => res.destroy());
        resolve(out);
        return;
      }
      // An error answer is a short JSON body: read no more than PROXY_ERROR_BODY_BYTES of it.
      const chunks: Buffer[] = [];
      let bodyBytes = 0;
      res.on('data', (c: Buffer) => {
        if (bodyBytes >= PROXY_ERROR_BODY_BYTES) return;
        chunks.push(c.subarray(0, PROXY_ERROR_BODY_BYTES - bodyBytes));
        bodyBytes += c.length;
      });
      res.on('end', () => {
        let message = `${nodeId} answered ${res.statusCode}`;
        try {
          message = (JSON.parse(Buffer.concat(chunks).toString()) as { error?: { message?: string } }).error?.message ?? message;
        } catch {
          // not JSON: keep the status
        }
        reject(unavailable(`: ${message}`));
      });
    };
    callNode(api, path, { timeoutMs: 10_000, ...(tls ? { tls } : {}) }).then(
      (res) => {
        // Past the headers, a quiet followed log is normal.
        res.socket.setTimeout(0);
        answered(res);
      },
      (err: Error) => reject(unavailable(`, which does not answer: ${err.message}`)),
    );
  });
}
