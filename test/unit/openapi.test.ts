// The OpenAPI description of the HTTP API (src/api/openapi.json): a valid OpenAPI 3.1
// document by the maintained validator, every schema in it compiles (its $refs
// resolve), it names every route the gateway serves with the role the gateway asks
// for and no other, and GET /v1/openapi.json serves it without a token.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Validator } from '@seriousme/openapi-schema-validator';
import { pino } from 'pino';
import t from 'tap';
import { OPENAPI_DOCUMENT } from '../../src/api/openapi.js';
import { createGateway, type GatewayBackend } from '../../src/api/server.js';
import { OpenApiChecker } from '../helpers/openapi-check.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

type Doc = { paths: Record<string, Record<string, { 'x-workrs-role'?: string; responses?: Record<string, unknown> }>> } & Record<string, unknown>;

function copy(): Doc {
  return structuredClone(OPENAPI_DOCUMENT) as Doc;
}

/** The document's operations as `METHOD /path/:param` → role. */
function documentedRoutes(doc: Doc): Map<string, string | undefined> {
  const routes = new Map<string, string | undefined>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!HTTP_METHODS.includes(method)) continue;
      routes.set(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`, op['x-workrs-role']);
    }
  }
  return routes;
}

/**
 * The gateway's routes as server.ts declares them, read from its source: each
 * `router.add('METHOD', '/path', …, 'role')`, and the web UI's files (UI_ROUTES), all GET
 * and public. Read as text, since the router is built inside createGateway.
 */
function servedRoutes(): Map<string, string> {
  const source = readFileSync(join(root, 'src/api/server.ts'), 'utf8');
  const routes = new Map<string, string>();
  const adds = source.split(/router\.add\(/).slice(1);
  for (const chunk of adds) {
    const head = /^'([A-Z]+)', '([^']+)'/.exec(chunk);
    if (head === null) continue; // the UI loop: its paths are below
    // The role is the last argument: the first `, 'role');` that ends a statement.
    const role = /,\s*'(public|read|submit|admin)'\);/.exec(chunk)?.[1];
    routes.set(`${head[1]} ${head[2]}`, role ?? '(no role found)');
  }
  for (const m of source.matchAll(/\['(\/[^']*)', \{ file: /g)) routes.set(`GET ${m[1]}`, 'public');
  return routes;
}

t.test('the document is valid OpenAPI 3.1 by @seriousme/openapi-schema-validator', async (t) => {
  const validator = new Validator();
  const r = await validator.validate(copy());
  t.same(r.errors, undefined, 'no errors');
  t.ok(r.valid, 'valid');
  t.equal(validator.version, '3.1', 'validated as 3.1');
});

t.test('the validator refuses broken documents (so the check above can fail)', async (t) => {
  const noDescription = copy();
  const healthz = noDescription.paths['/healthz']?.get?.responses?.['200'] as Record<string, unknown>;
  delete healthz.description;
  t.notOk((await new Validator().validate(noDescription)).valid, 'a response without its description');

  const badParameter = copy();
  (badParameter.paths['/v1/jobs'] as Record<string, unknown>).get = { parameters: [{ name: 'state', in: 'body' }], responses: {} };
  t.notOk((await new Validator().validate(badParameter)).valid, 'a parameter in "body" (not an OpenAPI 3 location)');

  const noInfo = copy();
  delete noInfo.info;
  t.notOk((await new Validator().validate(noInfo)).valid, 'no info');
});

t.test('every schema of the document compiles with ajv (2020-12, strict): every $ref resolves', (t) => {
  const n = new OpenApiChecker().compileAll();
  t.ok(n > 50, `${n} schemas compiled`);
  const dangling = copy();
  const job = dangling.paths['/v1/jobs/{id}']?.get?.responses?.['200'] as { content: { 'application/json': { schema: unknown } } };
  job.content['application/json'].schema = { $ref: '#/components/schemas/NoSuchSchema' };
  t.throws(() => new OpenApiChecker(dangling).compileAll(), /NoSuchSchema|can't resolve/, 'a dangling $ref throws');
  t.end();
});

t.test('the document names every route the gateway serves, with its role, and no other', (t) => {
  const served = servedRoutes();
  const documented = documentedRoutes(copy());
  t.ok(served.size >= 20, `${served.size} routes read from server.ts`);
  for (const [route, role] of served) t.equal(documented.get(route), role, `${route}: documented with role ${role}`);
  for (const route of documented.keys()) t.ok(served.has(route), `${route}: served by the gateway`);
  t.end();
});

t.test('every operation needing a role documents 401 and 403; public ones say security: []', (t) => {
  for (const [path, item] of Object.entries(copy().paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!HTTP_METHODS.includes(method)) continue;
      const what = `${method.toUpperCase()} ${path}`;
      const opSecurity = (op as { security?: unknown[] }).security;
      if (op['x-workrs-role'] === 'public') {
        t.same(opSecurity, [], `${what}: public, security []`);
      } else {
        t.ok(op.responses?.['401'] && op.responses['403'], `${what}: 401 and 403 documented`);
        t.equal(opSecurity, undefined, `${what}: the document's security applies`);
      }
    }
  }
  t.end();
});

t.test('GET /v1/openapi.json serves the document without a token', async (t) => {
  // Only ready() is called by the gateway for this route; any other method refuses.
  const backend = new Proxy({} as GatewayBackend, {
    get: (_target, name) => (name === 'ready' ? () => ({ ready: true, reason: 'test' }) : () => {
      throw new Error(`the test's backend has no ${String(name)}`);
    }),
  });
  const server = createGateway({ backend, uploadDir: root, secure: null, logger: pino({ level: 'silent' }) });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  const res = await fetch(`http://127.0.0.1:${port}/v1/openapi.json`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^application\/json/);
  t.equal(await new OpenApiChecker().check('GET', '/v1/openapi.json', res), null, 'the answer is as the document says');
  t.same(await res.json(), OPENAPI_DOCUMENT, 'the document itself');
});

t.test('the checker finds the operation and refuses what the document does not say', async (t) => {
  const checker = new OpenApiChecker();
  const answer = (status: number, body: unknown, type = 'application/json; charset=utf-8'): Response =>
    new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers: { 'content-type': type } });
  t.equal(checker.template('/v1/jobs/j-1/logs?follow=1'), '/v1/jobs/{id}/logs');
  t.equal(checker.template('/v1/cluster/nodes'), '/v1/cluster/nodes', 'a literal path before a template');
  t.equal(await checker.check('GET', '/v1/jobs/j-1', answer(404, { error: { code: 'JOB_NOT_FOUND', message: 'no job j-1' } })), null);
  t.match((await checker.check('GET', '/v1/jobs/j-1', answer(404, { error: { code: 'NO_SUCH_CODE', message: '' } })))?.problem, /allowed values/, 'an undocumented code');
  t.equal(await checker.check('GET', '/v1/jobs/j-1', answer(409, { error: { code: 'AMBIGUOUS', message: 'j-1 is the start of several job ids', details: { candidates: ['j-1a', 'j-1b'] } } })), null, "AMBIGUOUS's details name the candidates");
  t.equal(await checker.check('POST', '/v1/jobs', answer(400, { error: { code: 'INVALID_SPEC', message: 'command: is required', details: [{ field: 'command', message: 'is required' }] } })), null, "INVALID_SPEC's details list the fields");
  t.match((await checker.check('GET', '/v1/jobs/j-1', answer(418, { error: { code: 'TEAPOT', message: '' } })))?.problem, /documents no status 418/, 'an undocumented status');
  t.match((await checker.check('GET', '/healthz', answer(200, { ok: true, extra: 1 })))?.problem, /additional properties/, 'a field the schema does not have');
  t.match((await checker.check('GET', '/v1/jobs/j-1/logs', answer(200, 'out', 'application/json')))?.problem, /content type application\/json/, 'an undocumented content type');
  t.match((await checker.check('GET', '/v1/nowhere', answer(200, {})))?.problem, /in no path/, 'an undocumented path');
  t.equal(await checker.check('GET', '/v1/nowhere', answer(404, { error: { code: 'NOT_FOUND', message: 'no such endpoint' } })), null, 'a 404 for a path outside the document');
  t.equal(await checker.check('PUT', '/v1/jobs', answer(405, { error: { code: 'METHOD_NOT_ALLOWED', message: '' } })), null, 'a 405 for another method');
  const res = answer(200, { ok: true });
  await checker.check('GET', '/healthz', res);
  t.same(await res.json(), { ok: true }, 'the caller still reads the body');
});
