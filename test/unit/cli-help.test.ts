// Every command of the CLI ends its --help with examples, and every flag an example
// uses is one the command has: an example that would fail is worse than none. And
// `workrs completion bash` completes commands, subcommands and their options in bash.
import { spawnSync } from 'node:child_process';
import type { Command } from 'commander';
import t from 'tap';
import { bashCompletion } from '../../cli/commands/completion.js';
import { buildProgram } from '../../cli/program.js';

function commands(cmd: Command, prefix = ''): Array<{ path: string; cmd: Command }> {
  return cmd.commands.flatMap((sub) => {
    const path = `${prefix}${sub.name()}`;
    // A group that runs nothing itself (images, acl, tokens): its subcommands carry the examples.
    const runs = sub.commands.length === 0 || path === 'nodes';
    return [...(runs ? [{ path, cmd: sub }] : []), ...commands(sub, `${path} `)];
  });
}

function helpOf(cmd: Command): string {
  let text = '';
  cmd.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s) });
  cmd.outputHelp();
  return text;
}

const program = buildProgram();
for (const { path, cmd } of commands(program)) {
  t.test(`workrs ${path} --help has examples that use its own flags`, async (t) => {
    const help = helpOf(cmd);
    const examples = help.split('\nExamples:\n')[1];
    t.ok(examples, 'an Examples section');
    const lines = (examples ?? '').split('\n').filter((l) => l.includes(`workrs ${path}`));
    t.ok(lines.length > 0, `examples of workrs ${path}`);
    // Its own options and those of the commands above it (`nodes remove` takes those of `nodes`).
    const known = new Set<string>();
    for (let c: Command | null = cmd; c !== null; c = c.parent) for (const o of c.options) for (const f of [o.long, o.short]) if (f !== undefined) known.add(f);
    known.add('--help');
    for (const line of lines) {
      const command = line.slice(line.indexOf(`workrs ${path}`)).split(' -- ')[0] ?? '';
      for (const flag of command.match(/(?<=\s)--?[a-z][a-z-]*/g) ?? []) t.ok(known.has(flag), `${flag} is an option of workrs ${path} (${line.trim()})`);
    }
  });
}

t.test('the bash completion completes commands, subcommands and options', async (t) => {
  const script = bashCompletion(program);
  const complete = (...words: string[]): string[] => {
    const r = spawnSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _workrs; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
    t.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean);
  };
  t.same(complete('workrs', 'su'), ['submit']);
  t.same(complete('workrs', 'submit', '--fi'), ['--file']);
  t.same(complete('workrs', 'images', ''), ['import', 'ls']);
  t.same(complete('workrs', 'tokens', 'create', '--ro'), ['--role']);
  t.ok(complete('workrs', '').includes('completion'), 'every command, completion included');
  t.same(complete('workrs', 'nodes', ''), ['remove', 'drain', 'undrain']);
  t.same(complete('workrs', 'nodes', 'drain', '--no'), ['--no-wait']);
  t.same(complete('workrs', 'submit', '--na'), ['--name']);
  t.same(complete('workrs', 'jobs', '--la'), ['--label']);
  t.same(complete('workrs', 'logs', '--si'), ['--since']);
});
