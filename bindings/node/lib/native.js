'use strict'
// The native addon's exports: the one place that decides which corral .node is loaded.
// Owned by the Node binding; index.js and the worker modules require this file, never
// a .node directly. Where it looks, in order:
//   1. CORRAL_NATIVE_PATH (or napi-rs's NAPI_RS_NATIVE_LIBRARY_PATH): that file, only;
//   2. a build next to the package (`napi build --platform`, what `make node-build`
//      writes: corral.linux-x64-gnu.node, or the name napi gives another platform);
//   3. the platform package corral-linux-x64-gnu, an optionalDependency of corral
//      (the only prebuilt one: Linux, x64, glibc >= 2.17).
// A file that exists but does not load (a glibc too old, a foreign build) is reported
// with its own error, not as missing.
const fs = require('node:fs')
const path = require('node:path')

const PACKAGE = 'corral-linux-x64-gnu'
const PACKAGE_DIR = path.join(__dirname, '..')
// The npm package carries no Rust source: a build from source is one of the repository.
const BUILD_HINT =
  'or build it from source with a Rust toolchain (https://rustup.rs): in a checkout of corral, ' +
  'cd bindings/node && npm ci && npx napi build --platform --release, ' +
  'then set CORRAL_NATIVE_PATH to the corral.*.node it writes there'

function failure(code, message, cause) {
  return Object.assign(new Error(message, cause ? { cause } : undefined), { code })
}

function loadFile(file, where) {
  try {
    return require(file)
  } catch (e) {
    const message = `corral: the native addon ${file} (${where}) does not load: ${e.message}\nInstall a fitting one, ${BUILD_HINT}`
    throw failure('CORRAL_NATIVE_LOAD_FAILED', message, e)
  }
}

/** napi's suffixes for this platform, the first the likeliest (a .node built here). */
function localNames() {
  const { platform, arch } = process
  if (platform === 'linux') return [`linux-${arch}-gnu`, `linux-${arch}-musl`]
  if (platform === 'win32') return [`win32-${arch}-msvc`]
  return [`${platform}-${arch}`]
}

/** The C library of this process: 'glibc', or 'musl' (or another) when it is not. */
function libc() {
  if (process.platform !== 'linux') return ''
  process.report.excludeNetwork = true
  const report = process.report.getReport()
  if (report.header && report.header.glibcVersionRuntime) return 'glibc'
  const musl = (report.sharedObjects || []).some((f) => /musl/.test(f))
  return musl ? 'musl' : 'a C library other than glibc'
}

function missing() {
  const here = `${process.platform}-${process.arch}${process.platform === 'linux' ? ' with ' + libc() : ''}`
  if (here !== 'linux-x64 with glibc') {
    return failure(
      'CORRAL_NATIVE_MISSING',
      `corral: no native addon for ${here}: the only prebuilt one is ${PACKAGE} (Linux, x64, glibc >= 2.17).\nUse such a system, ${BUILD_HINT}`,
    )
  }
  return failure(
    'CORRAL_NATIVE_MISSING',
    `corral: the native addon package ${PACKAGE} is not installed. It is an optionalDependency of corral, ` +
      'which npm skips under --omit=optional or --no-optional, or with a lockfile made on another platform; ' +
      `reinstall without those (or npm install ${PACKAGE}@${require('../package.json').version}), ${BUILD_HINT}`,
  )
}

function load() {
  const explicit = process.env.CORRAL_NATIVE_PATH || process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (explicit) {
    const name = process.env.CORRAL_NATIVE_PATH ? 'CORRAL_NATIVE_PATH' : 'NAPI_RS_NATIVE_LIBRARY_PATH'
    return loadFile(path.resolve(explicit), `from ${name}`)
  }
  for (const suffix of localNames()) {
    const file = path.join(PACKAGE_DIR, `corral.${suffix}.node`)
    if (fs.existsSync(file)) return loadFile(file, 'a local build')
  }
  if (process.platform === 'linux' && process.arch === 'x64') {
    let file
    try {
      file = require.resolve(PACKAGE)
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e
    }
    if (file) {
      const want = require('../package.json').version
      const got = require(`${PACKAGE}/package.json`).version
      if (got !== want) {
        throw failure('CORRAL_NATIVE_MISMATCH', `corral: ${PACKAGE} is ${got} but corral is ${want}; install ${PACKAGE}@${want}`)
      }
      return loadFile(file, `from ${PACKAGE}`)
    }
  }
  throw missing()
}

module.exports = load()
