# The experiments' synthetic job (bench/experiments/run.ts), like the research
# prototype's: T seconds of work done in small steps, its progress held only in memory
# (plus a few MiB of state, so a checkpoint has something to dump). Each step does a
# little hashing and then sleeps out the rest of its 0.1 s; a step counts once however
# long it took, so a freeze (a checkpoint) or a lost box costs wall time, never
# progress it did not make. Restored by CRIU, the loop simply goes on from where the
# checkpoint caught it. Prints "P <seconds of work done>" after every step.
import hashlib
import os
import sys
import time

STEP = 0.1
total = float(sys.argv[1])
steps = round(total / STEP)
state = bytearray(os.urandom(4 * 1024 * 1024))
print(f"START {total}", flush=True)
done = 0
while done < steps:
    began = time.monotonic()
    at = (done * 4096) % len(state)
    state[at:at + 32] = hashlib.sha256(state[at:at + 4096]).digest()
    done += 1
    time.sleep(max(0.0, STEP - (time.monotonic() - began)))
    print(f"P {done * STEP:.1f}", flush=True)
print("DONE", flush=True)
