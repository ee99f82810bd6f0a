// `workrs completion bash|zsh`: a completion script made from the program itself, so
// it knows every command and option the executable has. zsh runs the bash script
// through bashcompinit.
import type { Command } from 'commander';
import { CliError, EXIT } from '../exit.js';

/** Option words of a command: its long flags (and --help). */
function optionWords(cmd: Command): string[] {
  return [...cmd.options.map((o) => o.long).filter((f): f is string => f !== undefined), '--help'];
}

const subcommands = (cmd: Command): Command[] => cmd.commands.filter((c) => c.name() !== 'help');

/** The bash completion script for `program`. */
export function bashCompletion(program: Command): string {
  const top = [...subcommands(program).map((c) => c.name()), '--help', '--version'];
  const cases = subcommands(program).map((c) => {
    const subs = subcommands(c);
    if (subs.length === 0) return `    ${c.name()}) words="${optionWords(c).join(' ')}" ;;`;
    const inner = subs.map((s) => `          ${s.name()}) words="${optionWords(s).join(' ')}" ;;`).join('\n');
    return [
      `    ${c.name()})`,
      `      if (( COMP_CWORD == 2 )); then words="${subs.map((s) => s.name()).join(' ')}"`,
      `      else`,
      `        case "\${COMP_WORDS[2]}" in`,
      inner,
      `        esac`,
      `      fi ;;`,
    ].join('\n');
  });
  return [
    '# workrs completion for bash: add `source <(workrs completion bash)` to ~/.bashrc',
    '_workrs() {',
    '  local cur="${COMP_WORDS[COMP_CWORD]}" words=""',
    '  if (( COMP_CWORD == 1 )); then',
    `    words="${top.join(' ')}"`,
    '  else',
    '  case "${COMP_WORDS[1]}" in',
    ...cases,
    '  esac',
    '  fi',
    '  COMPREPLY=( $(compgen -W "$words" -- "$cur") )',
    '}',
    // -o default: file names where no word matches (FILE arguments, --file values).
    'complete -o default -F _workrs workrs',
    '',
  ].join('\n');
}

export function completionCommand(shell: string, _opts: unknown, cmd: Command): void {
  const program = cmd.parent;
  if (program === null) throw new Error('completion runs as a subcommand');
  if (shell === 'bash') process.stdout.write(bashCompletion(program));
  else if (shell === 'zsh') process.stdout.write(`# workrs completion for zsh: add \`source <(workrs completion zsh)\` to ~/.zshrc\nautoload -U +X bashcompinit && bashcompinit\n${bashCompletion(program)}`);
  else throw new CliError(`completion: '${shell}' is not a shell this knows: bash or zsh`, EXIT.usage);
}
