// The outgoing backlog of one peer: encoded frames waiting for the link, bounded in
// bytes. When a new frame does not fit, the oldest frames go first: Raft tolerates
// loss and resends, and after an outage the newest messages are the useful ones.

export interface PushResult {
  queued: boolean; // false: the frame alone is larger than the bound
  droppedFrames: number; // older frames evicted to make room
}

export class FrameQueue {
  private frames: Buffer[] = [];
  private head = 0; // frames[0..head) are already taken; compacted lazily
  private sizeBytes = 0;

  constructor(private readonly maxBytes: number) {
    if (!(maxBytes > 0)) throw new RangeError(`FrameQueue: maxBytes must be positive, got ${maxBytes}`);
  }

  get bytes(): number {
    return this.sizeBytes;
  }

  get length(): number {
    return this.frames.length - this.head;
  }

  push(frame: Buffer): PushResult {
    if (frame.length > this.maxBytes) return { queued: false, droppedFrames: 0 };
    let droppedFrames = 0;
    while (this.sizeBytes + frame.length > this.maxBytes) {
      this.shift();
      droppedFrames += 1;
    }
    this.frames.push(frame);
    this.sizeBytes += frame.length;
    return { queued: true, droppedFrames };
  }

  /** Removes and returns the oldest frames whose sizes sum to at most `maxBytes`, and always at least one. */
  take(maxBytes: number): Buffer[] {
    const out: Buffer[] = [];
    let sizeBytes = 0;
    while (this.length > 0) {
      const next = this.frames[this.head];
      if (next === undefined) throw new Error('FrameQueue: hole inside the queue');
      if (out.length > 0 && sizeBytes + next.length > maxBytes) break;
      out.push(this.shift());
      sizeBytes += next.length;
    }
    return out;
  }

  clear(): number {
    const n = this.length;
    this.frames = [];
    this.head = 0;
    this.sizeBytes = 0;
    return n;
  }

  private shift(): Buffer {
    const frame = this.frames[this.head];
    if (frame === undefined) throw new Error('FrameQueue: shift on an empty queue');
    this.head += 1;
    this.sizeBytes -= frame.length;
    // Compact once the taken prefix dominates, so memory follows the live frames.
    if (this.head >= 1024 && this.head * 2 >= this.frames.length) {
      this.frames = this.frames.slice(this.head);
      this.head = 0;
    }
    return frame;
  }
}
