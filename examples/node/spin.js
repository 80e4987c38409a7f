'use strict'
// The heavy handler for heavy_workers.js: spins the CPU for `us` microseconds (default
// 1000) in JavaScript, on a worker thread.
module.exports = (req) => {
  const us = Number(new URL(req.url, 'http://x').searchParams.get('us') || 1000)
  const end = process.hrtime.bigint() + BigInt(Math.min(us, 10_000_000)) * 1000n
  while (process.hrtime.bigint() < end);
  return { status: 200, headers: { 'content-type': 'text/plain' }, body: `spun ${us} us\n` }
}
