// What the core has handed the driver in Ready objects, and what the driver has
// confirmed with advance() (etcd-io/raft keeps the same in rawnode.go): a Ready carries
// the hard state only when it differs from the persisted one, and the soft state only
// when it differs from the one last reported. Between ready() and advance() the core
// takes no input, so what it hands out cannot change under the driver.
import { assert } from './assert.js';
import type { HardState, Ready, SoftState } from './types.js';

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoftState(a: SoftState | null, b: SoftState): boolean {
  return a !== null && a.leader === b.leader && a.role === b.role;
}

export class ReadyHandoff {
  private persisted: HardState;
  /** The soft state the last Ready carried; null before the first, so the first always carries it. */
  private reported: SoftState | null = null;
  private outstanding = false;

  constructor(persisted: HardState) {
    this.persisted = { ...persisted };
  }

  /** Whether the driver must hear of `hard` or `soft`. */
  changed(hard: HardState, soft: SoftState): boolean {
    return !sameHardState(hard, this.persisted) || !sameSoftState(this.reported, soft);
  }

  /** A Ready is handed out: what it carries of the current states. No input is taken until it is confirmed. */
  handOut(hard: HardState, soft: SoftState): Pick<Ready, 'hardState' | 'softState'> {
    const softChanged = !sameSoftState(this.reported, soft);
    if (softChanged) this.reported = soft;
    this.outstanding = true;
    return { hardState: sameHardState(hard, this.persisted) ? null : hard, softState: softChanged ? soft : null };
  }

  /** advance(): the driver persisted what `rd` carried. */
  confirm(rd: Ready): void {
    assert(this.outstanding, 'advance() without an outstanding ready()');
    this.outstanding = false;
    if (rd.hardState) this.persisted = rd.hardState;
  }

  /** Every input but advance() is refused while a Ready is out. */
  assertIdle(what: string): void {
    assert(!this.outstanding, `${what}() between ready() and advance()`);
  }
}
