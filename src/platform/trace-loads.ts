// WORKRS_TRACE_LOADS=1: the executable says on stderr which of its heavy parts a command
// loaded (a chunk, classic-level's code), so tests can check that a command such as
// `workrs version` or `workrs jobs` stays clear of Docker's and LevelDB's code.

/** Reports that `what` was loaded, when tracing is on. */
export function traceLoad(what: string): void {
  if (process.env.WORKRS_TRACE_LOADS === '1') process.stderr.write(`workrs: loaded ${what}\n`);
}
