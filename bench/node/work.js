'use strict'
// 1 ms of JS, as the peers' /work route.
module.exports = () => {
  const end = process.hrtime.bigint() + 1_000_000n
  while (process.hrtime.bigint() < end);
  return 'hello\n'
}
