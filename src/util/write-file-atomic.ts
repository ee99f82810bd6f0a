// A small file replaced whole or not at all: written beside its name, then renamed over
// it. Readers see the old file or the new one, never a part (the CRIU hook's script and
// requests, a node's TLS files). The temporary name carries the process id, so two
// processes writing the same file (nodes sharing a host) do not write into each other's.
import { chmodSync, renameSync, writeFileSync } from 'node:fs';

export function writeFileAtomic(path: string, data: string | Buffer, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  // The mode given to writeFileSync is masked by the umask; chmod sets it exactly.
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}
