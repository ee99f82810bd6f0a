// A node's own calls to another node's API (joining, forwarding to the leader, a
// job's log from the node running it). In secure mode they go over HTTPS with this
// node's certificate as client certificate, which is how the far node knows a node is
// calling (src/api/roles.ts), and only to a node whose certificate names the node meant.
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ConnectionOptions } from 'node:tls';

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
