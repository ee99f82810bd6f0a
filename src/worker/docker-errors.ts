// Errors from dockerode: docker-modem rejects with an Error carrying the HTTP status
// (`statusCode`) and the engine's message in `json.message`.

export function dockerStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('statusCode' in err)) return undefined;
  const code = (err as { statusCode: unknown }).statusCode;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (err: unknown): boolean => dockerStatus(err) === 404;
export const isConflict = (err: unknown): boolean => dockerStatus(err) === 409;

/** An error and its causes as one line, e.g. for a restore's `reason`. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let at: unknown = err;
  for (let depth = 0; at !== undefined && at !== null && depth < 8; depth++) {
    parts.push(at instanceof Error ? at.message.trim() : String(at));
    at = at instanceof Error ? at.cause : undefined;
  }
  return parts.join(': ');
}
