// The store's lock: puts, fetches and exports share it, gc holds it alone, so gc never
// deletes a chunk that a put is about to reference.

/**
 * Many shared holders or one exclusive holder; a waiting exclusive blocks new shared
 * ones (gc is not starved). Shared sections must not nest: an inner one would wait
 * for a waiting exclusive that waits for the outer one.
 */
export class SharedExclusiveLock {
  private sharedCount = 0;
  private exclusiveHeld: Promise<void> | null = null;
  private drained: (() => void) | null = null;

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusiveHeld !== null) await this.exclusiveHeld;
    this.sharedCount += 1;
    try {
      return await fn();
    } finally {
      this.sharedCount -= 1;
      if (this.sharedCount === 0) this.drained?.();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusiveHeld !== null) await this.exclusiveHeld;
    let release = (): void => {};
    this.exclusiveHeld = new Promise<void>((resolve) => (release = resolve));
    try {
      if (this.sharedCount > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      return await fn();
    } finally {
      this.drained = null;
      this.exclusiveHeld = null;
      release();
    }
  }
}
