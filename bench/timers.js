// bench/timers.js N: the Node.js peer of bench/sleepers.lua — N setTimeout
// timers with random 0-1000 ms delays; prints one JSON line when all fired.
const n = Number(process.argv[2] || 100000);
const t0 = performance.now();
let fired = 0, maxLate = 0;
for (let i = 0; i < n; i++) {
  const delay = Math.floor(Math.random() * 1001);
  const due = performance.now() + delay;
  setTimeout(() => {
    maxLate = Math.max(maxLate, performance.now() - due);
    if (++fired === n) {
      console.log(JSON.stringify({ timers: n, wall_s: (performance.now() - t0) / 1000, max_late_ms: maxLate }));
    }
  }, delay);
}
