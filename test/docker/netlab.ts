// A network of boxes on one machine, so a test can partition one of them: each box (a
// workrs process and its own dockerd) lives in a network namespace of its own, joined
// to the host by a veth pair on a test bridge. A partition is iptables DROP inside the
// box's namespace for the other boxes' addresses: the box still answers the test,
// which talks to every box from the host's namespace through the bridge.
//
// Everything is named after the lab's index (bridge wrsacc<index>, namespaces
// wrsacc<index>-<id>, subnet 10.231.<index>.0/24), so test files running at the same
// time do not collide, and set-up first removes what a killed run left under the same
// names.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

async function run(cmd: string, args: string[]): Promise<string> {
  try {
    return (await execFileP(cmd, args)).stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim()}`, { cause: err });
  }
}

async function succeeds(cmd: string, args: string[]): Promise<boolean> {
  try {
    await execFileP(cmd, args);
    return true;
  } catch {
    return false;
  }
}

export class Netlab {
  readonly bridge: string;
  private readonly subnet: string;

  constructor(
    readonly index: number,
    readonly ids: readonly string[],
  ) {
    if (!Number.isInteger(index) || index < 1 || index > 254) throw new Error(`lab index ${index}: expected 1 to 254`);
    this.bridge = `wrsacc${index}`;
    this.subnet = `10.231.${index}`;
    for (const id of ids) if (this.veth(id).length > 15) throw new Error(`node id ${id} is too long for an interface name`);
  }

  /** The host's address on the bridge: where the test's requests come from. */
  get hostAddress(): string {
    return `${this.subnet}.1`;
  }

  address(id: string): string {
    const i = this.ids.indexOf(id);
    if (i < 0) throw new Error(`no box ${id} in lab ${this.index}`);
    return `${this.subnet}.${11 + i}`;
  }

  netns(id: string): string {
    return `${this.bridge}-${id}`;
  }

  /** The command prefix that runs a program inside the box's namespace (nsenter, not `ip netns exec`: docs/host.md). */
  enter(id: string): string[] {
    return ['nsenter', `--net=/run/netns/${this.netns(id)}`];
  }

  private veth(id: string): string {
    return `${this.bridge}-${id}`;
  }

  /** Bridge, then one namespace per box with its veth and address; leftovers of the same names are removed first. */
  async setUp(): Promise<void> {
    await this.tearDown();
    await run('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
    await run('ip', ['addr', 'add', `${this.hostAddress}/24`, 'dev', this.bridge]);
    await run('ip', ['link', 'set', this.bridge, 'up']);
    // Docker sets FORWARD to DROP, and br_netfilter sends bridged frames through it.
    await run('iptables', ['-w', '-I', 'FORWARD', ...this.forwardRule()]);
    for (const id of this.ids) {
      const ns = this.netns(id);
      await run('ip', ['netns', 'add', ns]);
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      await run('ip', ['link', 'add', this.veth(id), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await run('ip', ['link', 'set', this.veth(id), 'master', this.bridge, 'up']);
      await run('ip', ['-n', ns, 'addr', 'add', `${this.address(id)}/24`, 'dev', 'eth0']);
      await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    }
  }

  private forwardRule(): string[] {
    return ['-i', this.bridge, '-o', this.bridge, '-j', 'ACCEPT'];
  }

  /** Cuts `id` off from every other box, both ways. The host (the test) still reaches it. */
  async partition(id: string): Promise<void> {
    for (const other of this.ids.filter((o) => o !== id)) {
      await this.iptables(id, ['-A', 'INPUT', '-s', this.address(other), '-j', 'DROP']);
      await this.iptables(id, ['-A', 'OUTPUT', '-d', this.address(other), '-j', 'DROP']);
    }
  }

  /** Removes the partition rules (the namespace has no other rules: its dockerd runs with --iptables=false). */
  async heal(id: string): Promise<void> {
    await this.iptables(id, ['-F', 'INPUT']);
    await this.iptables(id, ['-F', 'OUTPUT']);
  }

  private async iptables(id: string, args: string[]): Promise<void> {
    const [cmd = 'nsenter', ...prefix] = this.enter(id);
    await run(cmd, [...prefix, 'iptables', '-w', ...args]);
  }

  /**
   * Removes everything of this lab by name, whatever state it is in: processes still in
   * its namespaces (stop the engines first, so their containers go cleanly), the
   * namespaces, veths (their peers go with them), the FORWARD rule and the bridge.
   */
  async tearDown(): Promise<void> {
    const errors: unknown[] = [];
    const step = async (fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    };
    for (const id of this.ids) {
      // The veth first: deleting the namespace deletes it too, but asynchronously.
      const veth = this.veth(id);
      await step(async () => {
        if (existsSync(`/sys/class/net/${veth}`)) await run('ip', ['link', 'del', veth]);
      });
      const ns = this.netns(id);
      await step(async () => {
        if (!existsSync(`/run/netns/${ns}`)) return;
        const pids = (await run('ip', ['netns', 'pids', ns])).split('\n').map(Number).filter((p) => Number.isInteger(p) && p > 0);
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Gone already.
          }
        }
        await run('ip', ['netns', 'del', ns]);
      });
    }
    await step(async () => {
      while (await succeeds('iptables', ['-w', '-C', 'FORWARD', ...this.forwardRule()])) {
        await run('iptables', ['-w', '-D', 'FORWARD', ...this.forwardRule()]);
      }
    });
    await step(async () => {
      if (existsSync(`/sys/class/net/${this.bridge}`)) await run('ip', ['link', 'del', this.bridge]);
    });
    if (errors.length > 0) throw new AggregateError(errors, `lab ${this.index}: tear-down left something behind`);
  }
}
