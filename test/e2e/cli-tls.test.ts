// The CLI against a real secure-mode cluster (three `workrs start --secret-file`
// processes, the harness's default): HTTPS trusted through --ca-file or a pinned --ca-fingerprint, a wrong pin
// and no CA refused with exit 2, `acl bootstrap` once only, tokens create/ls/revoke,
// a job submitted with a submit token, refused with a read token (naming the role),
// and a revoked token refused.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { fingerprintOf } from '../../src/tls/pki.js';
import { waitFor } from '../helpers/wait.js';
import { BINARY, LocalCluster } from '../process/harness.js';

const TOKEN_TEXT = /^wrs_[0-9a-f]{16}_[0-9a-f]{64}\n$/;

/** The environment without the caller's own CLI settings, so each call says exactly what it uses. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['WORKRS_SERVER', 'WORKRS_TOKEN', 'WORKRS_TOKEN_FILE', 'WORKRS_CA_FILE', 'WORKRS_CA_FINGERPRINT']) delete env[k];
  return env;
}

t.test('the CLI drives a secure-mode cluster with role tokens', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  t.ok(c.secure, 'the harness starts nodes with --secret-file');
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  // Ready once a node wrote DATA/ca.pem and all answer /readyz (public) over HTTPS. No
  // harness request before the CLI's own acl bootstrap: the harness would bootstrap.
  await c.allReady(30_000);
  const caFile = c.caFile();
  const fingerprint = fingerprintOf(readFileSync(caFile, 'utf8'));

  const server = c.url('n2');
  t.match(server, /^https:\/\//);
  const tokenFile = (name: string, token: string): string => {
    const f = join(c.dir, `${name}.token`);
    writeFileSync(f, token, { mode: 0o600 });
    return f;
  };
  /** `workrs ...args` with the CA file and `token` (a token file), or with `env` instead. */
  const cli = (args: string[], opts: { token?: string; env?: Record<string, string> } = {}) =>
    spawnSync(BINARY, args, {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...cleanEnv(), WORKRS_SERVER: server, ...(opts.env ?? { WORKRS_CA_FILE: caFile }), ...(opts.token ? { WORKRS_TOKEN_FILE: opts.token } : {}) },
    });

  const boot = cli(['acl', 'bootstrap']);
  t.equal(boot.status, 0, `acl bootstrap succeeds the first time (${boot.stderr.trim()})`);
  t.match(boot.stdout, TOKEN_TEXT, 'stdout is the token alone');
  t.match(boot.stderr, /keep it/, 'stderr tells the operator to keep it');
  const admin = tokenFile('admin', boot.stdout.trim());
  const again = cli(['acl', 'bootstrap', '--json']);
  t.not(again.status, 0, 'a second bootstrap is refused');
  t.match(again.stderr, /ACL_BOOTSTRAPPED/);
  t.equal(again.stdout, '', 'and prints no token');

  // Pinned by fingerprint, written the way people copy it: prefix, colons, upper case.
  const written = `sha256:${fingerprint.toUpperCase().match(/../g)?.join(':') ?? ''}`;
  const created = cli(['tokens', 'create', '--role', 'submit', '--name', 'ci', '--ttl', '1h'], { token: admin, env: { WORKRS_CA_FINGERPRINT: written } });
  t.equal(created.status, 0, `tokens create with --ca-fingerprint (${created.stderr.trim()})`);
  t.match(created.stdout, TOKEN_TEXT);
  const submit = tokenFile('submit', created.stdout.trim());
  const submitId = /^wrs_([0-9a-f]{16})_/.exec(created.stdout)?.[1] ?? '';
  const readJson = cli(['tokens', 'create', '--role', 'read', '--json'], { token: admin });
  t.equal(readJson.status, 0, readJson.stderr);
  const readToken = JSON.parse(readJson.stdout) as { id: string; token: string; role: string; expiresAt: number | null };
  t.match(readToken, { role: 'read', expiresAt: null, token: /^wrs_/ }, '--json prints the whole answer');
  const read = tokenFile('read', readToken.token);
  t.equal(cli(['tokens', 'create', '--role', 'admin', '--ttl', '250ms'], { token: admin }).status, 2, 'a ttl under a second is a usage error');

  const ls = cli(['tokens', 'ls'], { token: admin });
  t.equal(ls.status, 0, ls.stderr);
  t.match(ls.stdout, /^ID\s+NAME\s+ROLE\s+CREATED\s+EXPIRES\n/);
  t.match(ls.stdout, new RegExp(`^${submitId}\\s+ci\\s+submit\\s+[-\\d]+ [:\\d]+\\s+\\d{4}-`, 'm'), 'the submit token, named, with its expiry');
  t.match(ls.stdout, new RegExp(`^${readToken.id}[^\\n]*\\sread\\s+[-\\d]+ [:\\d]+\\s+never$`, 'm'), 'the read token, never expiring');
  const lsJson = cli(['tokens', 'ls', '--json'], { token: admin });
  const rows = JSON.parse(lsJson.stdout) as Array<{ id: string; role: string }>;
  t.same(rows.map((r) => r.role).sort(), ['admin', 'read', 'submit'], 'ls --json: the three tokens');
  t.notMatch(lsJson.stdout, /wrs_/, 'and never a secret');
  const byRead = cli(['tokens', 'ls'], { token: read });
  t.equal(byRead.status, 2, 'a read token cannot list tokens');
  t.match(byRead.stderr, /FORBIDDEN/);

  const ok = cli(['submit', '--wait', '--env', 'FAKE_SECONDS=0.3', '--', 'true'], { token: submit });
  t.equal(ok.status, 0, `a submit token submits (${ok.stderr.trim()})`);
  const job = ok.stdout.trim();
  t.match(job, /^j-[0-9a-f-]+$/);
  const refused = cli(['submit', '--', 'true'], { token: read });
  t.equal(refused.status, 2, 'a read token cannot submit: exit 2');
  t.match(refused.stderr, /FORBIDDEN/);
  t.match(refused.stderr, /submit/, 'the message names the role needed');
  t.equal(cli(['status', job], { token: read }).status, 0, 'a read token reads the job');
  const logs = cli(['logs', job, '--server', c.url('n3')], { token: read });
  t.equal(logs.status, 0, `logs stream over HTTPS from another node (${logs.stderr.trim()})`);
  t.match(logs.stdout, /exit code 0/);
  const escalate = cli(['tokens', 'create', '--role', 'admin'], { token: submit });
  t.equal(escalate.status, 2, 'a submit token cannot make tokens');
  t.match(escalate.stderr, /FORBIDDEN/);
  t.equal(cli(['submit', '--', 'true']).status, 2, 'no token at all: exit 2');

  const revoked = cli(['tokens', 'revoke', submitId], { token: admin });
  t.equal(revoked.status, 0, revoked.stderr);
  t.equal(revoked.stdout, `${submitId} revoked\n`);
  await waitFor('the revoked token refused', () => {
    const r = cli(['jobs'], { token: submit });
    return r.status === 2 && /TOKEN_INVALID/.test(r.stderr) ? true : undefined;
  }, 2_000, 100);
  t.pass('a revoked token is refused (401 TOKEN_INVALID, exit 2)');
  t.equal(cli(['tokens', 'revoke', '0000000000000000'], { token: admin }).status, 1, 'revoking an unknown id exits 1');

  const wrongPin = '0'.repeat(64);
  const wrong = cli(['jobs'], { token: admin, env: { WORKRS_CA_FINGERPRINT: wrongPin } });
  t.equal(wrong.status, 2, 'a wrong --ca-fingerprint fails with exit 2');
  t.match(wrong.stderr, fingerprint, 'naming the CA served');
  t.match(wrong.stderr, wrongPin, 'and the one given');
  const noCa = cli(['jobs'], { token: admin, env: {} });
  t.equal(noCa.status, 2, 'no CA given: the system store does not know the cluster CA');
  t.match(noCa.stderr, /--ca-file[^]*--ca-fingerprint/);
  const plain = cli(['jobs', '--server', server.replace('https:', 'http:')], { token: admin, env: {} });
  t.not(plain.status, 0, 'plain HTTP gets no service');
  t.match(plain.stderr, /https:\/\//);
  failed = false;
});
