// "Run once; if asked again meanwhile, run once more": a task that must never run twice
// at the same time and must not miss a request that came in while it ran (a scheduler
// round, a repair pass, a registration).

export class SingleFlight {
  private current: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly task: () => Promise<void>,
    /** Where a failed run's error goes; the promise run() returns never rejects. */
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** True while a run is in progress. */
  get busy(): boolean {
    return this.current !== null;
  }

  /**
   * Starts a run, or, during one, asks for one more right after it. Resolves when no
   * run is in progress or asked for, so a caller's request is covered by then.
   */
  run(): Promise<void> {
    if (this.current !== null) {
      this.again = true;
      return this.current;
    }
    this.current = this.loop();
    return this.current;
  }

  /** Resolves once no run is in progress (without asking for one). */
  async idle(): Promise<void> {
    await this.current;
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        try {
          await this.task();
        } catch (err) {
          this.onError(err);
        }
      } while (this.again);
    } finally {
      this.current = null;
    }
  }
}
