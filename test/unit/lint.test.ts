// ESLint over the whole repository (eslint.config.js), as one test of `make test`: any
// problem fails it, listed as file:line rule. `make lint` runs the same check by hand,
// and `node_modules/.bin/eslint --fix .` repairs import order and type imports.
import { spawnSync } from 'node:child_process';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface LintMessage {
  ruleId: string | null;
  line: number;
  message: string;
}
interface LintResult {
  filePath: string;
  messages: LintMessage[];
}

t.test('eslint reports no problem', async (t) => {
  // Without the test runner's NODE_OPTIONS: ESLint needs no TypeScript loader of its own.
  const { NODE_OPTIONS: _runnerOptions, ...env } = process.env;
  const run = spawnSync(process.execPath, [resolve(root, 'node_modules/eslint/bin/eslint.js'), '--format', 'json', '.'], {
    cwd: root,
    env,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  // Exit 1 means "problems found" and still prints the report; 2 means ESLint itself failed.
  if (run.status !== 0 && run.status !== 1) {
    t.fail(`eslint could not run (exit ${run.status}): ${run.stderr}`);
    return;
  }
  const results = JSON.parse(run.stdout) as LintResult[];
  const problems = results.flatMap((r) =>
    r.messages.map((m) => `${relative(root, r.filePath)}:${m.line} ${m.ruleId ?? 'parse error'}: ${m.message}`),
  );
  t.equal(problems.length, 0, 'no problem', { problems });
  if (problems.length > 0) {
    t.comment(`${problems.length} problem(s); node_modules/.bin/eslint --fix . repairs import order and type imports:`);
    for (const p of problems) t.comment(p);
  }
});
