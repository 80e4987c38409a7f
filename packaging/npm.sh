#!/usr/bin/env bash
# dist/npm (owned by the npm packaging; `make dist-npm`): the two packages a user without
# Rust installs. corral-linux-x64-gnu holds the addon, linked by cargo-zigbuild against
# glibc 2.17 so it loads on the distributions the manylinux_2_17 wheel does; corral holds
# the JavaScript and names it an optionalDependency, loaded by lib/native.js.
# Both are staged in target/npm-stage (never in bindings/node) and packed with `npm pack`.
# shellcheck source=packaging/lib.sh
source "$(dirname "$0")/lib.sh"

PLATFORM=corral-linux-x64-gnu
NODE_FILE=corral.linux-x64-gnu.node
SRC="$ROOT/bindings/node"
STAGE="$ROOT/target/npm-stage"
OUT="$DIST/npm"

command -v cargo-zigbuild >/dev/null || die "cargo-zigbuild is not in $VENV/bin: run make dist-env"
command -v npm >/dev/null || die "npm is not on PATH: install Node >= 18 with npm"

# napi build only adds NAPI_TYPE_DEF_TMP_FOLDER (type generation, not needed: index.d.ts
# is kept in the repository) to a plain cargo build of the cdylib, so cargo zigbuild
# builds the same addon. napi-build's build.rs adds -z nodelete itself.
say "building the Node addon for $ZIG_TARGET"
cargo zigbuild --release --locked --target "$ZIG_TARGET" -p corral-node
built="$CARGO_TARGET_DIR/${ZIG_TARGET%."$GLIBC_FLOOR"}/release/libcorral_node.so"
[ -f "$built" ] || die "cargo zigbuild did not produce $built"

rm -rf "$STAGE" && mkdir -p "$STAGE/$PLATFORM" "$STAGE/corral" "$OUT"
rm -f "$OUT"/*.tgz

# The platform package: the addon (debug info stripped: the release profile keeps line
# tables, 9 MB of them) as its main; npm installs it only on linux/x64/glibc.
strip --strip-debug -o "$STAGE/$PLATFORM/$NODE_FILE" "$built"
check_glibc_floor "$STAGE/$PLATFORM/$NODE_FILE"
cp "$ROOT/packaging/npm/README.platform.md" "$STAGE/$PLATFORM/README.md"

# The JavaScript package: what bindings/node/package.json lists in `files`, with that
# manifest less its development fields (scripts, devDependencies, napi, private) and
# plus the platform package as an optionalDependency of this very version.
node - "$SRC/package.json" "$STAGE" "$VERSION" "$PLATFORM" "$NODE_FILE" <<'EOF'
const fs = require('node:fs')
const path = require('node:path')
const [src, stage, version, platform, nodeFile] = process.argv.slice(2)
const pkg = JSON.parse(fs.readFileSync(src, 'utf8'))
if (pkg.version !== version) {
  console.error(`dist: bindings/node/package.json is ${pkg.version}, the workspace ${version}: make them one`)
  process.exit(1)
}
const shipped = { ...pkg, optionalDependencies: { [platform]: version } }
for (const k of ['private', 'scripts', 'devDependencies', 'napi']) delete shipped[k]
fs.writeFileSync(path.join(stage, 'corral', 'package.json'), JSON.stringify(shipped, null, 2) + '\n')
const native = {
  name: platform,
  version,
  description: `${pkg.name}'s native addon for Linux x64 with glibc >= 2.17 (installed by ${pkg.name})`,
  main: nodeFile,
  files: [nodeFile],
  os: ['linux'],
  cpu: ['x64'],
  libc: ['glibc'],
  engines: pkg.engines,
  license: pkg.license,
}
fs.writeFileSync(path.join(stage, platform, 'package.json'), JSON.stringify(native, null, 2) + '\n')
for (const f of pkg.files) fs.cpSync(path.join(path.dirname(src), f), path.join(stage, 'corral', f), { recursive: true })
EOF
cp "$ROOT/packaging/npm/README.corral.md" "$STAGE/corral/README.md"

# The staged addon loads in this Node and the staged JavaScript finds it through the
# loader's explicit path (the install from a registry is packaging/test_npm.sh's job).
CORRAL_NATIVE_PATH="$STAGE/$PLATFORM/$NODE_FILE" node -e '
  const c = require(process.argv[1])
  if (typeof c.serve !== "function" || c.options().length === 0) throw new Error("the staged corral has no serve() or options()")' \
    "$STAGE/corral" || die "the staged package does not load its addon (see the error above)"

for pkg in "$PLATFORM" corral; do
    (cd "$STAGE/$pkg" && npm pack --silent --pack-destination "$OUT" >/dev/null)
done
corral_tgz="$OUT/corral-$VERSION.tgz"
platform_tgz="$OUT/$PLATFORM-$VERSION.tgz"
for tgz in "$corral_tgz" "$platform_tgz"; do
    [ -f "$tgz" ] || die "npm pack did not write $tgz (dist/npm has: $(ls "$OUT"))"
done
if tar -tzf "$corral_tgz" | grep -E '\.node$|binding\.js$'; then
    die "$corral_tgz carries an addon or binding.js (above); its files must be JavaScript only"
fi
[ "$(tar -tzf "$platform_tgz" | grep -c '\.node$')" = 1 ] || die "$platform_tgz must carry exactly one .node"
say "$(du -h "$corral_tgz" | cut -f1) $corral_tgz"
say "$(du -h "$platform_tgz" | cut -f1) $platform_tgz"
