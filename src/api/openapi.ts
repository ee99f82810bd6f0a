// The OpenAPI 3.1 description of the HTTP API: openapi.json, beside this module, is
// the maintained source (docs/api.md says the same in prose). esbuild bundles the
// JSON into the executable; GET /v1/openapi.json serves it.
import document from './openapi.json' with { type: 'json' };

/** The document as parsed; never changed (the tests compile their checks from it). */
export const OPENAPI_DOCUMENT: Readonly<Record<string, unknown>> = document;

let text: string | null = null;

/** The document as served: compact JSON, made on first use. */
export function openApiText(): string {
  text ??= `${JSON.stringify(document)}\n`;
  return text;
}
