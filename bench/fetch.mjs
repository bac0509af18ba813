// bench/fetch.mjs URL N C: the Node.js peer of bench/http_client.lua —
// N fetch() GETs with C in flight; prints one JSON line.
const [url, n = 20000, c = 100] = [process.argv[2], +process.argv[3], +process.argv[4]];
let started = 0, done = 0, bytes = 0;
const t0 = performance.now();
async function worker() {
  while (started < n) {
    started++;
    const r = await fetch(url);
    bytes += (await r.arrayBuffer()).byteLength;
    done++;
  }
}
await Promise.all(Array.from({ length: c }, worker));
const wall = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ requests: done, in_flight: c, wall_s: wall, req_per_s: done / wall, bytes }));
