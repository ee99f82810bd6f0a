/**
 * Errors with a stable `code` and the HTTP status the API answers with; the gateway
 * maps them to `{"error":{"code","message"}}`.
 */
export class WorkrsError extends Error {
  constructor(
    readonly code: string,
    readonly httpStatus: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WorkrsError';
  }
}
