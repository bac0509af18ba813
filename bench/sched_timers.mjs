// bench/sched_timers.mjs N: the Node.js peer of `bench/sched_timers.lua
// --worker N` — N setTimeout timers with the same seeded delays (xorshift32
// from 42, 0-2000 ms); prints one JSON line when the last one fired.
import { readFileSync } from "node:fs";

const n = Number(process.argv[2] || 1000000);
let x = 42, fired = 0, maxLate = 0, early = 0, earliest = 0;
const heap0 = process.memoryUsage().heapUsed;
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
  const delay = x % 2001;
  const due = performance.now() + delay;
  setTimeout(() => {
    const now = performance.now();
    const late = now - due;
    if (late > maxLate) maxLate = late;
    if (late < 0) { early++; if (late < earliest) earliest = late; }
    if (++fired === n) {
      const hwm = readFileSync("/proc/self/status", "utf8").match(/VmHWM:\s*(\d+)/);
      console.log(JSON.stringify({
        timers: n, arm_s: armed / 1000, last_fired_s: (now - t0) / 1000,
        last_late_ms: late, max_late_ms: maxLate, early: early, max_early_ms: -earliest,
        heap_bytes_per_timer: heapPerTimer, vmhwm_kb: Number(hwm[1]),
      }));
    }
  }, delay);
}
const armed = performance.now() - t0;
const heapPerTimer = (process.memoryUsage().heapUsed - heap0) / n;
