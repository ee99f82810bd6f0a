// `workrs result -o DIR` against a folder someone prepared: links named like the
// result's files (one to a file outside DIR, one to a folder outside DIR standing where
// an output's folder goes) and an existing setuid file named like an output. The CLI
// must refuse without --force and write nothing; with --force it replaces the links
// and the file themselves, never what they point to, and drops the setuid bit. Then a
// hostile server: names leaving DIR, links, setuid modes, too many bytes or entries.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { waitFor } from '../helpers/wait.js';
import { BINARY, LocalCluster } from '../process/harness.js';
import { assertClusterHealthy } from './health.js';

/** Runs the CLI (with `env` added: a cluster's token and CA) without blocking this process: the hostile server below answers it from here. */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000, env: { ...process.env, ...env } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

const modeOf = (path: string): number => lstatSync(path).mode & 0o7777;

t.test('result -o DIR does not write through links or over files already in DIR', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.allReady(60_000);
  const leader = await c.leader(30_000);

  const submitted = await c.post<{ id: string }>(leader, '/v1/jobs', {
    command: ['true'],
    env: { FAKE_SECONDS: '0.2', FAKE_OUTPUTS: '1' },
    outputs: ['out/model.bin', 'report.txt'],
  });
  t.equal(submitted.status, 202, 'the job with outputs is accepted');
  const id = submitted.body.id;
  const state = await waitFor('the job to finish', async () => {
    const r = await c.get<{ state: string }>(leader, `/v1/jobs/${id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(r.body.state) ? r.body.state : undefined;
  }, 60_000, 100);
  t.equal(state, 'succeeded');

  // What the links point to, outside DIR.
  const outside = join(c.dir, 'outside');
  mkdirSync(join(outside, 'folder'), { recursive: true });
  writeFileSync(join(outside, 'secret.txt'), 'precious\n');
  writeFileSync(join(outside, 'hard.txt'), 'also precious\n');
  const dir = join(c.dir, 'dir');
  mkdirSync(dir);
  symlinkSync(join(outside, 'secret.txt'), join(dir, 'stdout.log'));
  symlinkSync(join(outside, 'folder'), join(dir, 'out'));
  writeFileSync(join(dir, 'report.txt'), 'mine\n');
  chmodSync(join(dir, 'report.txt'), 0o4755);
  linkSync(join(outside, 'hard.txt'), join(dir, 'exit-code')); // a hard link: same file as one outside
  const untouched = (what: string): void => {
    t.equal(readFileSync(join(outside, 'secret.txt'), 'utf8'), 'precious\n', `${what}: the file a link in DIR points to is untouched`);
    t.equal(readFileSync(join(outside, 'hard.txt'), 'utf8'), 'also precious\n', `${what}: the file hard-linked into DIR is untouched`);
    t.same(readdirSync(join(outside, 'folder')), [], `${what}: nothing written into the folder a link in DIR points to`);
  };

  // Fetching a result needs the read role only.
  const reader = await c.cliEnv((await c.createToken('read')).token);
  const refused = await cli(['result', id, '-o', dir, '--server', c.url(leader)], reader);
  t.not(refused.status, 0, 'without --force an existing name is refused');
  t.match(refused.stderr, /exists/, `the message says a name exists (${refused.stderr.trim()})`);
  t.match(refused.stderr, new RegExp(`${dir}/(stdout\\.log|out|report\\.txt|exit-code)`), 'and names it');
  t.match(refused.stderr, /--force/, 'and how to replace it');
  untouched('refused');
  t.ok(lstatSync(join(dir, 'stdout.log')).isSymbolicLink(), 'the planted link is still there');
  t.equal(readFileSync(join(dir, 'report.txt'), 'utf8'), 'mine\n', 'the existing file keeps its content');
  t.equal(modeOf(join(dir, 'report.txt')), 0o4755, 'and its mode');
  t.same(readdirSync(dir).sort(), ['exit-code', 'out', 'report.txt', 'stdout.log'], 'nothing else was written into DIR');

  const forced = await cli(['result', id, '-o', dir, '--force', '--server', c.url(leader)], reader);
  t.equal(forced.status, 0, `with --force the result is unpacked (${forced.stderr.trim()})`);
  untouched('forced');
  const log = lstatSync(join(dir, 'stdout.log'));
  t.ok(log.isFile() && !log.isSymbolicLink(), 'stdout.log is now a file of its own, the link replaced');
  t.match(readFileSync(join(dir, 'stdout.log'), 'utf8'), new RegExp(`fake run of ${id}`), 'holding the log');
  t.ok(lstatSync(join(dir, 'out')).isDirectory(), 'out is now a real folder, the link replaced');
  t.equal(readFileSync(join(dir, 'out', 'model.bin'), 'utf8'), '/work/out/model.bin\n', 'holding the output');
  t.equal(readFileSync(join(dir, 'report.txt'), 'utf8'), '/work/report.txt\n', 'the existing file is replaced');
  t.equal(modeOf(join(dir, 'report.txt')) & 0o7000, 0, 'without the setuid bit the old file had');
  t.equal(readFileSync(join(dir, 'exit-code'), 'utf8'), '0\n', 'the hard link is replaced by a file of its own');
  t.equal(statSync(join(dir, 'exit-code')).nlink, 1, 'not linked to anything outside');
  t.same(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no staging folder left behind');

  await assertClusterHealthy(t, c);
  failed = false;
});

// ---- a hostile server ---------------------------------------------------------------

function header(name: string, opts: { type?: string; size?: number; mode?: number; linkName?: string } = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write(`${(opts.mode ?? 0o644).toString(8).padStart(7, '0')}\0`, 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${(opts.size ?? 0).toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write(opts.type ?? '0', 156);
  if (opts.linkName) h.write(opts.linkName, 157, 100);
  h.write('ustar\u000000', 257);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

function file(name: string, content: string, mode = 0o644): Buffer {
  const data = Buffer.from(content);
  return Buffer.concat([header(name, { size: data.length, mode }), data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

/** A server that answers every result request with `archive`. */
async function hostileServer(t: { teardown(f: () => Promise<void>): void }, archive: () => Buffer): Promise<string> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-tar' });
    res.end(archive());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('a hostile result archive cannot leave DIR, plant links, keep setuid bits or fill the disk', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'workrs-hostile-result-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const sentinel = join(base, 'sentinel');
  mkdirSync(sentinel);
  writeFileSync(join(sentinel, 'target.txt'), 'precious\n');
  let archive = Buffer.concat([
    file('../escape.txt', 'x'),
    file(`${sentinel}/abs.txt`, 'x'),
    file('a/../../up.txt', 'x'),
    header('link', { type: '2', linkName: sentinel }),
    file('link/through.txt', 'x'),
    header('hard', { type: '1', linkName: `${sentinel}/target.txt` }),
    file('hard', 'replaced?'),
    file('suid.sh', '#!/bin/sh\n', 0o4755),
    file('sgid', 'g', 0o2775),
    file('plain.txt', 'hello\n'),
    Buffer.alloc(1024),
  ]);
  const server = await hostileServer(t, () => archive);
  const dir = join(base, 'sub', 'dir');

  const r = await cli(['result', 'j-any', '-o', dir, '--server', server]);
  t.equal(r.status, 0, `the safe part is unpacked (${r.stderr.trim()})`);
  t.same(readdirSync(sentinel), ['target.txt'], 'nothing written outside DIR');
  t.equal(readFileSync(join(sentinel, 'target.txt'), 'utf8'), 'precious\n', 'and no file outside changed');
  t.notOk(existsSync(join(base, 'sub', 'escape.txt')) || existsSync(join(base, 'escape.txt')) || existsSync(join(base, 'up.txt')), 'no .. name escaped');
  t.ok(lstatSync(join(dir, 'link')).isDirectory(), 'no link was created: link/ is a real folder');
  t.equal(readFileSync(join(dir, 'hard'), 'utf8'), 'replaced?', 'the hard link entry was not created; the file of that name was');
  t.equal(modeOf(join(dir, 'suid.sh')) & 0o7000, 0, 'setuid dropped');
  t.equal(modeOf(join(dir, 'sgid')) & 0o7000, 0, 'setgid dropped');
  t.match(r.stderr, /skipped \.\.\/escape\.txt: unsafe name/, 'skipped entries are listed');

  const big = join(base, 'big');
  archive = Buffer.concat([file('one', 'x'.repeat(600 * 1024)), file('two', 'x'.repeat(600 * 1024)), Buffer.alloc(1024)]);
  const tooBig = await cli(['result', 'j-any', '-o', big, '--max-size', '1m', '--server', server]);
  t.equal(tooBig.status, 1, 'a result over --max-size is refused');
  t.match(tooBig.stderr, /TAR_TOO_LARGE.*--max-size/, `with the flag that allows more (${tooBig.stderr.trim()})`);
  t.same(readdirSync(big), [], 'and nothing of it is written');
  t.equal((await cli(['result', 'j-any', '-o', big, '--max-size', '2m', '--server', server])).status, 0, 'a larger --max-size lets it through');

  const many = join(base, 'many');
  archive = Buffer.concat([...Array.from({ length: 20 }, (_, i) => file(`f${i}`, 'x')), Buffer.alloc(1024)]);
  const tooMany = await cli(['result', 'j-any', '-o', many, '--max-entries', '10', '--server', server]);
  t.equal(tooMany.status, 1, 'a result with more entries than --max-entries is refused');
  t.match(tooMany.stderr, /TAR_TOO_MANY_ENTRIES.*--max-entries/, `with the flag that allows more (${tooMany.stderr.trim()})`);
  t.same(readdirSync(many), [], 'and nothing of it is written');

  const damaged = join(base, 'damaged');
  archive = Buffer.concat([file('ok.txt', 'fine'), file('cut.txt', 'y'.repeat(5000)).subarray(0, 1500)]);
  const cut = await cli(['result', 'j-any', '-o', damaged, '--server', server]);
  t.equal(cut.status, 1, 'a damaged archive is refused');
  t.match(cut.stderr, /INVALID_TAR/, `with the reason (${cut.stderr.trim()})`);
  t.same(readdirSync(damaged), [], 'and the files before the damage are not left behind');

  t.equal((await cli(['result', 'j-any', '-o', many, '--max-entries', 'lots', '--server', server])).status, 2, 'a bad --max-entries is a usage error');
  t.equal((await cli(['result', 'j-any', '-o', many, '--max-size', 'huge', '--server', server])).status, 2, 'a bad --max-size is a usage error');
});
