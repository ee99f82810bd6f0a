import { Command, Option } from 'commander';
import { versionLine } from '../src/version.js';

/** Bounds on what `result -o` unpacks, so a hostile or broken server cannot fill the disk. */
const RESULT_DEFAULT_MAX_SIZE = '8g';
const RESULT_DEFAULT_MAX_ENTRIES = 100_000;

/**
 * A command's action whose module is imported when the command runs: `workrs start`
 * never evaluates the CLI's HTTP client or Docker's, which would cost every node
 * memory it never uses (docs/development.md, "The executable").
 */
function lazy<A extends unknown[]>(load: () => Promise<(...args: A) => Promise<void> | void>): (...args: A) => Promise<void> {
  return async (...args) => {
    const action = await load();
    await action(...args);
  };
}

const DEFAULT_SERVER = 'http://127.0.0.1:7701';

/** What every command taking a JOB accepts (resolved by the server: src/state/machine.ts resolveJobRef). */
const JOB_ARG = 'the job: its id, its name, or the start of its id (4 characters or more)';

function serverOption(): Option {
  return new Option('--server <urls>', 'a node of the cluster, or several separated by commas: tried in order until one answers').env('WORKRS_SERVER').default(DEFAULT_SERVER);
}

function tokenOption(): Option {
  return new Option('--token-file <file>', 'API token, role read, submit or admin (or the token itself in env WORKRS_TOKEN)').env('WORKRS_TOKEN_FILE');
}

function caFileOption(): Option {
  return new Option('--ca-file <file>', "the cluster CA to trust for https:// (any node's DATA/ca.pem)").env('WORKRS_CA_FILE');
}

function caFingerprintOption(): Option {
  return new Option('--ca-fingerprint <sha256>', 'fetch the cluster CA from --server and trust it only if its SHA-256 is this (logged by workrs start)').env('WORKRS_CA_FINGERPRINT');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The options of a node: `workrs start` takes them, and `workrs install` writes them into the node's config file. */
function withNodeOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--id <id>', 'node id').env('WORKRS_ID'))
    .addOption(new Option('--data <dir>', 'data folder (Raft log, state, blobs)').env('WORKRS_DATA'))
    .addOption(new Option('--api <host:port>', 'HTTP API address').env('WORKRS_API'))
    .addOption(new Option('--peer <host:port>', 'peer (Raft, bulk data) address').env('WORKRS_PEER'))
    .addOption(new Option('--bootstrap <list>', 'initial voters: n1=host:port,n2=...').env('WORKRS_BOOTSTRAP'))
    .addOption(new Option('--join <url>', 'join a running cluster through this node').env('WORKRS_JOIN'))
    .addOption(new Option('--docker <url>', 'Docker engine').env('WORKRS_DOCKER'))
    .addOption(new Option('--runtime <kind>', 'container runtime').choices(['docker', 'fake']).env('WORKRS_RUNTIME'))
    .addOption(new Option('--secret-file <file>', 'the join secret (secure mode: TLS, node certificates, API tokens); without it a node runs in dev mode on loopback').env('WORKRS_SECRET_FILE'))
    .addOption(new Option('--token-file <file>', 'deprecated: the old name of --secret-file'))
    .addOption(new Option('--previous-secret-file <file>', 'the join secret before a rotation, still accepted').env('WORKRS_PREVIOUS_SECRET_FILE'))
    .addOption(new Option('--ca-fingerprint <sha256>', 'when joining: the cluster CA this node expects').env('WORKRS_CA_FINGERPRINT'))
    .addOption(new Option('--ca-file <file>', 'when joining: the cluster CA this node expects, as PEM').env('WORKRS_CA_FILE'))
    .addOption(new Option('--tls-san <names>', "more host names or addresses for this node's certificate, comma-separated").env('WORKRS_TLS_SAN'))
    .addOption(new Option('--slots <n>', 'jobs run at once on this node').env('WORKRS_SLOTS'))
    .addOption(new Option('--max-pending-jobs <n>', 'refuse submissions through this node (429) while this many jobs are pending (default 10000)').env('WORKRS_MAX_PENDING_JOBS'))
    .addOption(new Option('--standby-restores <n>', 'Docker: prepare the takeover of up to this many jobs whose checkpoint this node holds, a container made from the checkpoint and not started (default 4; 0 turns it off)').env('WORKRS_STANDBY_RESTORES'))
    .addOption(new Option('--job-memory-mb <mb>', "memory limit of a job whose spec gives none (default 1024, or --max-job-memory-mb if smaller)").env('WORKRS_JOB_MEMORY_MB'))
    .addOption(new Option('--job-cpus <n>', 'CPU limit of a job whose spec gives none (default 1)').env('WORKRS_JOB_CPUS'))
    .addOption(new Option('--job-pids <n>', "processes and threads one job's container may have (default 4096)").env('WORKRS_JOB_PIDS'))
    .addOption(new Option('--max-job-memory-mb <mb>', "most memoryMB a job may ask for here; more is refused with 400 (default this box's memory)").env('WORKRS_MAX_JOB_MEMORY_MB'))
    .addOption(new Option('--max-job-cpus <n>', "most cpus a job may ask for here; more is refused with 400 (default this box's CPUs)").env('WORKRS_MAX_JOB_CPUS'))
    .addOption(new Option('--job-log-file-mb <mb>', "a job's container log is rotated at this size (default 10)").env('WORKRS_JOB_LOG_FILE_MB'))
    .addOption(new Option('--job-log-files <n>', 'rotated log files kept per job; results and checkpoints keep the last size x files MiB of a log (default 3)').env('WORKRS_JOB_LOG_FILES'))
    .addOption(new Option('--max-result-mb <mb>', "a job whose declared outputs exceed this fails, its result keeping the log only (default 1024)").env('WORKRS_MAX_RESULT_MB'));
}

export function buildProgram(): Command {
  const program = new Command('workrs')
    .description('Workrs: run jobs on a cluster of edge boxes; checkpointed with CRIU, resumed elsewhere when a box dies.')
    // The line `workrs version` prints, as docker, kubectl and nomad print theirs for --version.
    .version(versionLine(), '-V, --version', 'print the version')
    .showHelpAfterError('(run workrs --help for usage)')
    .configureHelp({ sortSubcommands: false })
    // Before any subcommand is added: they copy it, so their parse errors (a missing
    // option or argument) reach main() and exit 2 (usage) instead of commander's 1.
    .exitOverride();

  withNodeOptions(program.command('start').description('run a node: gateway, Raft member, worker and scheduler'))
    .addOption(new Option('--config <file>', 'JSON config file (keys as the flags, camelCase)').env('WORKRS_CONFIG'))
    .action(lazy(async () => (await import('./commands/start.js')).startCommand));

  program
    .command('demo')
    .description('start a local cluster, run a job, destroy its box, watch it resume from a checkpoint')
    .option('--nodes <n>', 'nodes to start (3 to 7)', '3')
    .option('--keep', 'keep the data folder afterwards')
    .action(lazy(async () => (await import('./commands/demo.js')).demoCommand));

  program
    .command('submit')
    .description('submit a job; prints its id')
    .argument('<cmd...>', 'command to run in the container (after --)')
    .option('--image <img>', 'container image', 'workrs/busybox:1')
    .option('--file <path>', 'file to place in /work (repeatable)', collect, [])
    .option('--env <K=V>', 'environment variable (repeatable)', collect, [])
    .option('--estimate <duration>', 'forecast of the failure-free run time, e.g. 90s')
    .option('--checkpoint <policy>', 'auto | off | an interval such as 10s')
    .option('--cpus <n>', 'CPU limit')
    .option('--memory <size>', 'memory limit, e.g. 256m')
    .option('--output <path>', 'output to collect into the result (repeatable)', collect, [])
    .option('--timeout <duration>', 'give up after, e.g. 1h')
    .option('--name <name>', 'a name to refer to the job by, unique among pending and running jobs (letters, digits, _ . -; at most 63)')
    .option('--label <k=v>', 'a label, to filter `workrs jobs --label` by (repeatable)', collect, [])
    .option('--wait', 'wait for the job, show progress, exit with its exit code')
    .option('--json', 'print JSON')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/jobs.js')).submitCommand));

  program
    .command('status')
    .description("a job's state, attempts and checkpoints")
    .argument('<job>', JOB_ARG)
    .option('--json', 'print JSON')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/jobs.js')).statusCommand));

  program
    .command('wait')
    .description('wait until a job is final; exits with its exit code (1 if it failed without one or was cancelled)')
    .argument('<job>', JOB_ARG)
    .option('--timeout <duration>', 'give up after this long (e.g. 90s, 10m, 2h): exit 124')
    .option('--json', 'print the final job as JSON on stdout (progress stays on stderr)')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/jobs.js')).waitCommand));

  program
    .command('jobs')
    .description('list jobs, newest first')
    .option('--state <state>', 'only jobs in this state')
    .option('--label <k=v>', 'only jobs with this label (k=v), or with this key whatever its value (k); repeatable: all must match', collect, [])
    .option('--limit <n>', 'at most this many jobs, newest first', '100')
    .option('--all', 'every job, however many')
    .option('--json', 'print JSON')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/jobs.js')).jobsCommand));

  program
    .command('logs')
    .description("a job's output (stdout and stderr), from any node")
    .argument('<job>', JOB_ARG)
    .option('-f, --follow', 'stream while it runs')
    .option('-n, --tail <lines>', 'only the last this many lines (then, with -f, what follows)')
    .option('--since <time>', 'only output printed since then: a duration back (10m, 1h) or an RFC 3339 time; output a resumed attempt inherited has no time (see docs/api.md)')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/output.js')).logsCommand));

  program
    .command('result')
    .description("a finished job's result: stdout.log, exit-code and its declared outputs")
    .argument('<job>', JOB_ARG)
    .option('-o, --output <dir>', 'unpack into this folder (else the tar goes to stdout)')
    .option('--force', 'with -o: replace files and links already in the folder (else refused)')
    .option('--max-size <size>', 'with -o: refuse a result larger than this, e.g. 20g', RESULT_DEFAULT_MAX_SIZE)
    .option('--max-entries <n>', 'with -o: refuse a result with more files than this', String(RESULT_DEFAULT_MAX_ENTRIES))
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/output.js')).resultCommand));

  program
    .command('cancel')
    .description('cancel a job')
    .argument('<job>', JOB_ARG)
    .option('--json', 'print JSON')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/jobs.js')).cancelCommand));

  withNodeOptions(program.command('install').description("install this executable as a systemd service: /usr/local/bin/workrs, /etc/workrs/config.json from these node options, workrs.service; Docker set up for checkpoints"))
    .option('--root <dir>', 'install under this folder instead of / (a package or image being built)')
    .option('--no-start', 'enable the service without starting it')
    .action(lazy(async () => (await import('./commands/install.js')).installCommand));

  program
    .command('uninstall')
    .description("remove what install wrote (the service, the executable, /etc/workrs); the node's data stays")
    .option('--root <dir>', 'the folder install wrote under (default /)')
    .action(lazy(async () => (await import('./commands/install.js')).uninstallCommand));

  const nodes = program
    .command('nodes')
    .description("the cluster's nodes (without a subcommand: list them)")
    .option('--json', 'print JSON')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/jobs.js')).nodesCommand));
  nodes
    .command('remove')
    .description('remove a node from the cluster for good (admin): its jobs resume elsewhere from their checkpoints; it must join again to come back')
    .argument('<node>', 'the node id')
    // --server, --token-file, --ca-file, --ca-fingerprint: those of `nodes`, given before or after.
    .action(lazy(async () => (await import('./commands/jobs.js')).nodesRemoveCommand));
  nodes
    .command('drain')
    .description('drain a node (admin): nothing new goes there, its jobs move elsewhere, each from a last checkpoint; waits until none runs there')
    .argument('<node>', 'the node id')
    .option('--no-wait', 'return once the drain is recorded, without waiting for the jobs to move')
    .option('--undo', 'undrain it instead: it takes jobs again')
    .option('--timeout <duration>', 'stop waiting after this long (e.g. 10m): exit 124; the drain goes on')
    .option('--json', 'print JSON')
    .action(lazy(async () => (await import('./commands/nodes.js')).nodesDrainCommand));
  nodes
    .command('undrain')
    .description('undo a drain (admin): the node takes jobs again')
    .argument('<node>', 'the node id')
    .option('--json', 'print JSON')
    .action(lazy(async () => (await import('./commands/nodes.js')).nodesUndrainCommand));

  const images = program.command('images').description('container images imported into the cluster, loaded by the nodes whose engine lacks them');
  images
    .command('import')
    .description('import a `docker save` tar (one or more images); prints the references it provides')
    .argument('<file>', 'e.g. from: docker save repo:tag > image.tar')
    .option('--replace', 'move references the cluster has to this image (else the import is refused with IMAGE_EXISTS)')
    .option('--json', 'print JSON')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/images.js')).imagesImportCommand));
  images
    .command('ls')
    .description('list imported images: one row per reference, then imports whose references newer ones took (<none>)')
    .option('--json', 'print JSON')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/images.js')).imagesLsCommand));

  const acl = program.command('acl').description('access control of a secure-mode cluster (started with --secret-file)');
  acl
    .command('bootstrap')
    .description("make the cluster's first admin token; prints it; works once per cluster")
    .option('--json', 'print JSON')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/acl.js')).aclBootstrapCommand));

  const tokens = program.command('tokens').description('API tokens: each has a role, read, submit (read, submit and cancel jobs) or admin (everything)');
  tokens
    .command('create')
    .description('make an API token (admin); prints it')
    .addOption(new Option('--role <role>', 'what the token may do').choices(['read', 'submit', 'admin']).makeOptionMandatory())
    .option('--name <name>', 'a name to recognise it by in tokens ls (1 to 64 characters)')
    .option('--ttl <duration>', 'expires after, e.g. 30s, 10m, 24h, 7d (default never)')
    .option('--json', 'print JSON')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/acl.js')).tokensCreateCommand));
  tokens
    .command('ls')
    .description('list API tokens, without their secrets (admin)')
    .option('--json', 'print JSON')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/acl.js')).tokensLsCommand));
  tokens
    .command('revoke')
    .description('revoke an API token at once, on every node (admin)')
    .argument('<id>', 'the token id (tokens ls), or the token itself')
    .option('--json', 'print JSON')
    .addOption(serverOption())
    .addOption(tokenOption())
    .addOption(caFileOption())
    .addOption(caFingerprintOption())
    .action(lazy(async () => (await import('./commands/acl.js')).tokensRevokeCommand));

  program
    .command('plan')
    .description('evaluate the checkpoint models offline: how many checkpoints, how often, the expected completion')
    .requiredOption('--estimate <duration>', 'failure-free run time, e.g. 2h')
    .requiredOption('--mtbf <duration>', 'mean time between failures of a box, e.g. 6h')
    .requiredOption('--checkpoint-cost <duration>', 'cost of one checkpoint, e.g. 20s')
    .option('--restore-cost <duration>', 'cost of a restart after a failure (detection, reassignment, fetch, restore), e.g. 10s; default 0')
    .option('--json', 'print JSON')
    .action(lazy(async () => (await import('./commands/plan.js')).planCommand));

  program
    .command('completion')
    .description('print a shell completion script (bash or zsh)')
    .argument('<shell>', 'bash or zsh')
    .action(lazy(async () => (await import('./commands/completion.js')).completionCommand));

  program.command('version').description('print the version').option('--json', 'print JSON').action(lazy(async () => (await import('./commands/version.js')).versionCommand));

  program
    .command('doctor')
    .description('check this box: embedded storage, Docker engine, CRIU')
    .addOption(new Option('--docker <url>', 'Docker engine').env('WORKRS_DOCKER'))
    .option('--only <checks>', 'comma-separated subset of: storage,docker,criu')
    .option('--json', 'print JSON')
    .action(lazy(async () => (await import('./commands/doctor.js')).doctorCommand));

  addExamples(program);
  return program;
}

/** Examples shown at the end of each command's --help, by command path. */
const EXAMPLES: Record<string, Array<[string, string]>> = {
  start: [
    ['workrs start --id n1 --data /var/lib/workrs --api 10.0.0.1:7701 --peer 10.0.0.1:7801 --bootstrap n1=10.0.0.1:7801,n2=10.0.0.2:7801,n3=10.0.0.3:7801 --secret-file /etc/workrs/secret', 'the first node of a secure three-node cluster'],
    ['workrs start --id n4 --data /var/lib/workrs --api 10.0.0.4:7701 --peer 10.0.0.4:7801 --secret-file /etc/workrs/secret --join https://10.0.0.1:7701', 'one more node, joining through any member'],
  ],
  demo: [['workrs demo', 'three local nodes, a job, its box killed, the job resumed from its checkpoint'], ['workrs demo --keep', 'and leave the cluster running']],
  submit: [
    ['workrs submit -- python3 train.py', 'prints the job id'],
    ['workrs submit --file data.csv --output model.bin --estimate 2h --wait -- python3 /work/train.py', 'with an input file and an output, waiting for the end'],
    ['workrs submit --server https://10.0.0.1:7701,https://10.0.0.2:7701 --ca-file ca.pem --token-file submit.token -- sh -c "make"', 'to a secure cluster, any of two nodes'],
    ['workrs submit --name train-7 --label team=vision --label gpu=no -- python3 train.py', 'named and labelled: then workrs status train-7, workrs jobs --label team=vision'],
  ],
  wait: [['workrs wait JOB', 'until it ends; $? is its exit code'], ['workrs wait --timeout 10m JOB', 'at most ten minutes (exit 124 past that)']],
  status: [['workrs status JOB', 'state, attempts, checkpoints'], ['workrs status train-7', 'the job named train-7 (or the newest of that name)'], ['workrs status 4d2c', 'the job whose id starts with j-4d2c'], ['workrs status JOB --json', 'the whole job as JSON']],
  jobs: [['workrs jobs', 'the newest 100'], ['workrs jobs --state running --all', 'every running job'], ['workrs jobs --label team=vision --label gpu', 'jobs labelled team=vision that have a gpu label'], ['workrs jobs --json --limit 10', 'as JSON']],
  logs: [['workrs logs -f JOB', 'follow while it runs, from any node'], ['workrs logs -n 20 JOB', 'the last 20 lines'], ['workrs logs --since 10m -f JOB', 'what it printed in the last ten minutes, then follow']],
  result: [['workrs result JOB -o out/', 'unpack stdout.log, exit-code and the outputs into out/'], ['workrs result JOB > result.tar', 'the archive itself']],
  cancel: [['workrs cancel JOB', 'stop it wherever it runs']],
  nodes: [['workrs nodes', 'leader, term and each node with its state and load'], ['workrs nodes --json', 'as JSON']],
  'nodes remove': [['workrs nodes remove n4 --token-file admin.token', 'a box retired for good: its jobs go elsewhere']],
  'nodes drain': [['workrs nodes drain n2 --token-file admin.token', 'move its jobs off (each from a last checkpoint), waiting until none runs there'], ['workrs nodes drain n2 --no-wait', 'return at once; workrs nodes shows the progress'], ['workrs nodes drain n2 --undo', 'take jobs again']],
  'nodes undrain': [['workrs nodes undrain n2', 'the node takes jobs again']],
  'images import': [['docker save myimage:1 -o myimage.tar && workrs images import myimage.tar', 'make an image available to every node']],
  'images ls': [['workrs images ls', 'the imported images and their references']],
  'acl bootstrap': [['workrs acl bootstrap --server https://10.0.0.1:7701 --ca-file ca.pem > admin.token', "the cluster's first admin token, once"]],
  'tokens create': [['workrs tokens create --role submit --name ci --ttl 30d --token-file admin.token', 'a token for a CI runner, valid 30 days']],
  'tokens ls': [['workrs tokens ls --token-file admin.token', 'every token, without its secret']],
  'tokens revoke': [['workrs tokens revoke TOKEN-ID --token-file admin.token', 'at once, on every node']],
  plan: [['workrs plan --estimate 2h --mtbf 6h --checkpoint-cost 20s --restore-cost 10s', 'how often to checkpoint a 2 h job on boxes failing every 6 h']],
  version: [['workrs version --json', 'version, commit, Node and platform as JSON']],
  install: [
    ['workrs install --id n1 --data /var/lib/workrs --api 10.0.0.1:7701 --peer 10.0.0.1:7801 --bootstrap n1=10.0.0.1:7801,n2=10.0.0.2:7801,n3=10.0.0.3:7801 --secret-file /etc/workrs/secret', 'this box as n1, a systemd service from now on'],
    ['workrs install --root /tmp/image --id n1 --data /var/lib/workrs --api 10.0.0.1:7701 --peer 10.0.0.1:7801 --bootstrap n1=10.0.0.1:7801', 'into an image being built'],
  ],
  uninstall: [['workrs uninstall', "the service, the executable and /etc/workrs go; the node's data stays"]],
  completion: [['source <(workrs completion bash)', 'complete commands and options in this shell (add it to ~/.bashrc)'], ['workrs completion zsh > ~/.zfunc/workrs.zsh', 'the same for zsh']],
  doctor: [['workrs doctor', 'can this box run Workrs?'], ['workrs doctor --only docker,criu', 'just the engine and CRIU']],
};

/** Adds the examples of EXAMPLES to every command that has them; a command without any is a mistake (test/unit/cli-help.test.ts). */
function addExamples(program: Command): void {
  const walk = (cmd: Command, prefix: string): void => {
    for (const sub of cmd.commands) {
      const path = `${prefix}${sub.name()}`;
      const examples = EXAMPLES[path];
      if (examples) {
        const width = Math.max(...examples.map(([c]) => c.length));
        const text = examples.map(([c, what]) => (c.length > 60 ? `  ${c}\n      ${what}` : `  ${c.padEnd(Math.min(width, 60))}  ${what}`)).join('\n');
        sub.addHelpText('after', `\nExamples:\n${text}`);
      }
      walk(sub, `${path} `);
    }
  };
  walk(program, '');
}
