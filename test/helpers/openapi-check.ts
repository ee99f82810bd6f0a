// Checks real answers of the API against its OpenAPI description (src/api/openapi.json):
// the operation is found by method and path template, the status must be one the
// operation documents, the content type one that status documents, and a JSON body
// must match that status's schema (ajv, JSON Schema 2020-12, as OpenAPI 3.1 uses).
// Paths outside the document may only answer 404 NOT_FOUND, and a documented path
// with another method 405 METHOD_NOT_ALLOWED (the document's info says so).
//
// Only JSON bodies are read, from a clone of the answer: a streamed log or a result
// tar is left untouched for the caller, and a JSON answer can still be read by it.
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { OPENAPI_DOCUMENT } from '../../src/api/openapi.js';

interface MediaType {
  schema?: unknown;
}
interface ResponseObject {
  description: string;
  content?: Record<string, MediaType>;
  $ref?: string;
}
interface Operation {
  responses: Record<string, ResponseObject>;
}
type PathItem = Record<string, unknown>;
interface Document {
  paths: Record<string, PathItem>;
  components: { responses: Record<string, ResponseObject> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
/** The key under which the document is known to ajv; $refs inside it resolve against it. */
const DOC_ID = 'https://workrs.invalid/openapi.json';
/** Keywords of the document outside JSON Schema that ajv meets (OpenAPI's `example`, our extensions). */
const OPENAPI_KEYWORDS = ['openapi', 'info', 'tags', 'security', 'paths', 'components', 'servers', 'webhooks', 'externalDocs', 'jsonSchemaDialect', 'example', 'x-workrs-role'];

// ajv-formats is CommonJS: its plugin is module.exports and module.exports.default; NodeNext types only the latter.
const addFormats = formats.default;

/** A JSON pointer's escaping of one key. */
function pointerKey(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function segments(path: string): string[] {
  return path.split('/').filter(Boolean);
}

/** An answer the document does not describe. */
export interface Violation {
  /** What is wrong, the same for every answer wrong in the same way: method, path template, status, problems. */
  problem: string;
  /** The request's path and the start of the body, of one such answer. */
  example: string;
}

export class OpenApiChecker {
  private readonly doc: Document;
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();
  /** Templates with their segments, those with more literal segments first (`/v1/cluster/nodes` before a template of the same length). */
  private readonly templates: Array<{ template: string; parts: string[] }>;

  constructor(doc: Readonly<Record<string, unknown>> = OPENAPI_DOCUMENT) {
    this.doc = doc as unknown as Document;
    this.ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false });
    addFormats(this.ajv);
    this.ajv.addVocabulary(OPENAPI_KEYWORDS);
    this.ajv.addSchema(structuredClone(doc) as Record<string, unknown>, DOC_ID);
    const literals = (parts: string[]): number => parts.filter((p) => !p.startsWith('{')).length;
    this.templates = Object.keys(this.doc.paths)
      .map((template) => ({ template, parts: segments(template) }))
      .sort((a, b) => literals(b.parts) - literals(a.parts));
  }

  /** The document's path template for `path` (query ignored), or null. */
  template(path: string): string | null {
    const segs = segments(new URL(path, 'http://x').pathname);
    for (const { template, parts } of this.templates) {
      if (parts.length !== segs.length) continue;
      if (parts.every((p, i) => p.startsWith('{') || p === segs[i])) return template;
    }
    return null;
  }

  /** The validator of the schema at `pointer` (inside the document). */
  private validator(pointer: string): ValidateFunction {
    let v = this.validators.get(pointer);
    if (v === undefined) {
      v = this.ajv.getSchema(`${DOC_ID}#${pointer}`);
      if (v === undefined) throw new Error(`openapi.json has no schema at ${pointer}`);
      this.validators.set(pointer, v);
    }
    return v;
  }

  /**
   * Compiles every response and request schema of the document: a $ref that does not
   * resolve or a keyword ajv does not know throws. Returns how many were compiled.
   */
  compileAll(): number {
    let n = 0;
    const visit = (node: unknown, pointer: string): void => {
      if (typeof node !== 'object' || node === null) return;
      for (const [key, value] of Object.entries(node)) {
        const at = `${pointer}/${pointerKey(key)}`;
        if (key === 'schema' && typeof value === 'object' && value !== null) {
          this.validator(at);
          n++;
        } else {
          visit(value, at);
        }
      }
    };
    visit(this.doc.paths, '/paths');
    visit(this.doc.components.responses, '/components/responses');
    return n;
  }

  /** A response object with its $ref followed, and the pointer of where it is. */
  private resolve(response: ResponseObject, pointer: string): { response: ResponseObject; pointer: string } {
    const ref = response.$ref;
    if (ref === undefined) return { response, pointer };
    const name = /^#\/components\/responses\/(.+)$/.exec(ref)?.[1];
    const target = name === undefined ? undefined : this.doc.components.responses[name];
    if (name === undefined || target === undefined) throw new Error(`openapi.json: ${pointer} refers to ${ref}, which is not a response of components.responses`);
    return { response: target, pointer: `/components/responses/${pointerKey(name)}` };
  }

  /**
   * What is wrong with `res` as the answer to `method path`; null when it is as
   * documented. Reads a JSON body from a clone, never the answer's own body.
   */
  async check(method: string, path: string, res: Response): Promise<Violation | null> {
    const template = this.template(path);
    const problem = await this.problem(method, path, template, res);
    if (problem === null) return null;
    return { problem: `${method.toUpperCase()} ${template ?? path} answered ${res.status}: ${problem.text}`, example: `${path}${problem.body === undefined ? '' : `: ${JSON.stringify(problem.body).slice(0, 400)}`}` };
  }

  private async problem(method: string, path: string, template: string | null, res: Response): Promise<{ text: string; body?: unknown } | null> {
    const m = method.toLowerCase() === 'head' ? 'get' : method.toLowerCase();
    let response: ResponseObject;
    let pointer: string;
    if (template === null) {
      if (res.status !== 404) return { text: 'the path is in no path of openapi.json' };
      ({ response, pointer } = this.resolve({ description: '', $ref: '#/components/responses/NotFound' }, ''));
    } else {
      const item = this.doc.paths[template] ?? {};
      const op = METHODS.includes(m) ? (item[m] as Operation | undefined) : undefined;
      if (op === undefined) {
        if (res.status !== 405) return { text: `openapi.json has no ${m} operation on ${template}` };
        ({ response, pointer } = this.resolve({ description: '', $ref: '#/components/responses/MethodNotAllowed' }, ''));
      } else {
        const status = String(res.status);
        const key = status in op.responses ? status : `${status[0] ?? ''}XX` in op.responses ? `${status[0] ?? ''}XX` : 'default' in op.responses ? 'default' : null;
        const documented = key === null ? undefined : op.responses[key];
        if (key === null || documented === undefined) return { text: `the operation documents no status ${status} (it documents ${Object.keys(op.responses).join(', ')})` };
        ({ response, pointer } = this.resolve(documented, `/paths/${pointerKey(template)}/${m}/responses/${key}`));
      }
    }
    const type = (res.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    const content = response.content;
    if (content === undefined) return null;
    const media = Object.keys(content).find((k) => k.toLowerCase() === type);
    if (media === undefined) return { text: `content type ${type || '(none)'}; documented are ${Object.keys(content).join(', ')}` };
    // A HEAD answer has the GET's headers and no body.
    if (method.toLowerCase() === 'head') return null;
    if (media !== 'application/json' || content[media]?.schema === undefined) return null;
    let body: unknown;
    try {
      body = JSON.parse(await res.clone().text());
    } catch (err) {
      // A body the caller cannot read either (the connection broke) is the caller's to report.
      if (err instanceof SyntaxError) return { text: `the body is not JSON (${err.message})` };
      return null;
    }
    const validate = this.validator(`${pointer}/content/${pointerKey(media)}/schema`);
    if (validate(body)) return null;
    // Instance paths without array indexes: every row wrong in the same way is one problem.
    const problems = new Set((validate.errors ?? []).map((e) => `${e.instancePath.replace(/\/\d+(?=\/|$)/g, '/*') || '(body)'} ${e.message ?? ''}${Object.keys(e.params).length > 0 ? ` ${JSON.stringify(e.params)}` : ''}`));
    return { text: `the body does not match openapi.json ${pointer}: ${[...problems].slice(0, 8).join('; ')}`, body };
  }
}

let shared: OpenApiChecker | null = null;

/** One checker per process: compiling the document's schemas is done once. */
export function openApiChecker(): OpenApiChecker {
  shared ??= new OpenApiChecker();
  return shared;
}
