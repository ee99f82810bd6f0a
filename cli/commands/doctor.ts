import { checkCriu, checkDocker, checkStorage, type CheckResult } from '../../src/doctor/checks.js';
import { CliError, EXIT } from '../exit.js';

const ALL = ['storage', 'docker', 'criu'] as const;
type CheckName = (typeof ALL)[number];

function isCheckName(name: string): name is CheckName {
  return (ALL as readonly string[]).includes(name);
}

function selected(only: string | undefined): CheckName[] {
  if (only === undefined) return [...ALL];
  const names = only.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const unknown = names.filter((n) => !isCheckName(n));
  if (unknown.length > 0 || names.length === 0) {
    throw new CliError(`--only takes a comma-separated subset of ${ALL.join(',')}; got '${only}'`, EXIT.usage);
  }
  return names.filter(isCheckName);
}

export async function doctorCommand(options: { docker?: string; only?: string; json?: boolean }): Promise<void> {
  const run: Record<CheckName, () => Promise<CheckResult>> = {
    storage: checkStorage,
    docker: () => checkDocker(options.docker),
    criu: checkCriu,
  };
  const results: CheckResult[] = [];
  for (const name of selected(options.only)) results.push(await run[name]());
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ ok: results.every((r) => r.ok), checks: results })}\n`);
  } else {
    for (const r of results) process.stdout.write(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name.padEnd(8)} ${r.detail}\n`);
  }
  if (!results.every((r) => r.ok)) process.exitCode = EXIT.failed;
}
