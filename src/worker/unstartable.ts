// An attempt that can never start on this node as things stand (e.g. its image is on
// no engine and in no import): the runtime throws this instead of a plain error, and
// the worker ends the attempt with `exitCode` rather than retrying it for ever.

/** As `docker run` answers when the engine cannot create or start the container. */
export const EXIT_CANNOT_START = 125;

export class UnstartableError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_CANNOT_START,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UnstartableError';
  }
}
