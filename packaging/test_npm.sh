#!/usr/bin/env bash
# The npm artifacts as a user without Rust gets them (owned by the npm packaging; run by
# `make dist-test` under packaging/no_rust.sh: /usr/bin's node and npm only). Publishes
# dist/npm's two tarballs to a private verdaccio on loopback (pinned in
# packaging/npm/registry, no uplinks, so nothing is taken from elsewhere by mistake),
# installs corral from it next to Express from the public registry, then checks
# (a) `npx corral app.js` serving Express, stopped by SIGTERM, (b) require('corral')
# .serve({ fetch }), (c) an --omit=optional install failing with CORRAL_NATIVE_MISSING.
set -euo pipefail
ROOT="${CORRAL_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
NPM_DIR="$ROOT/packaging/npm"
REGISTRY_DIR="$NPM_DIR/registry"
CORRAL_TGZ="$ROOT/dist/npm/corral-$VERSION.tgz"
PLATFORM_TGZ="$ROOT/dist/npm/corral-linux-x64-gnu-$VERSION.tgz"

say() { printf 'test_npm: %s\n' "$*" >&2; }
die() { printf 'test_npm: FAILED: %s\n' "$*" >&2; exit 1; }

for f in "$CORRAL_TGZ" "$PLATFORM_TGZ"; do
    [ -f "$f" ] || die "$f is missing: run make dist-npm first"
done

work="$(mktemp -d /tmp/corral-npm-test.XXXXXX)"
registry_pid=""
cleanup() {
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# npm's cache and settings of this run only; every npm command is bounded in time.
export npm_config_cache="$work/npm-cache" npm_config_userconfig="$work/npmrc"
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
touch "$work/npmrc"
npm() { timeout 300 /usr/bin/npm --loglevel=error "$@"; }
started=$SECONDS

# The registry: verdaccio from the pinned lockfile, installed once into
# packaging/npm/registry/node_modules (git-ignored) and reused while the lockfile holds.
if ! [ -f "$REGISTRY_DIR/node_modules/verdaccio/bin/verdaccio" ] ||
    ! [ "$REGISTRY_DIR/node_modules/.package-lock.json" -nt "$REGISTRY_DIR/package-lock.json" ]; then
    say "installing verdaccio (packaging/npm/registry/package-lock.json)"
    (cd "$REGISTRY_DIR" && npm ci --no-audit --no-fund) || die "npm ci of verdaccio failed (above)"
fi
port="$(node "$NPM_DIR/registry.js" port)"
url="http://127.0.0.1:$port"
mkdir -p "$work/registry"
cat > "$work/registry/config.yaml" <<EOF
# Written by packaging/test_npm.sh: a throwaway registry, loopback only, no uplinks.
storage: ./storage
auth:
  htpasswd:
    file: ./htpasswd
packages:
  '**':
    access: \$all
    publish: \$authenticated
web:
  enable: false
log: { type: stdout, format: pretty, level: warn }
EOF
node "$REGISTRY_DIR/node_modules/verdaccio/bin/verdaccio" --config "$work/registry/config.yaml" \
    --listen "127.0.0.1:$port" > "$work/registry/log" 2>&1 &
registry_pid=$!
node "$NPM_DIR/registry.js" wait "$url" "$registry_pid" 60 || { cat "$work/registry/log" >&2; die "no registry"; }
say "verdaccio answers at $url ($((SECONDS - started)) s)"

token="$(node "$NPM_DIR/registry.js" token "$url")"
printf '//127.0.0.1:%s/:_authToken=%s\n' "$port" "$token" > "$work/npmrc"
for tgz in "$PLATFORM_TGZ" "$CORRAL_TGZ"; do
    npm publish "$tgz" --registry "$url" >/dev/null || die "publishing $tgz to $url failed (above)"
done
say "published $(basename "$PLATFORM_TGZ") and $(basename "$CORRAL_TGZ")"

# A user's project: Express from the public registry, then corral from ours.
app="$work/app"
mkdir -p "$app" && cd "$app"
npm init -y >/dev/null
npm install express@4.21.2 >/dev/null || die "installing express@4.21.2 from the public registry failed (above)"
npm install "corral@$VERSION" --registry "$url" >/dev/null || die "installing corral from $url failed (above)"
[ -f node_modules/corral-linux-x64-gnu/corral.linux-x64-gnu.node ] ||
    die "npm install corral did not install its optionalDependency corral-linux-x64-gnu: $(ls node_modules)"
if compgen -G 'node_modules/corral/*.node' >/dev/null; then die "corral itself carries a .node"; fi
say "installed express and corral $VERSION with corral-linux-x64-gnu ($((SECONDS - started)) s)"

cp "$NPM_DIR/apps/express_app.js" app.js
node "$NPM_DIR/apps/cli_check.js" || die "(a) npx corral app.js"
cp "$NPM_DIR/apps/serve_check.js" serve.js
node serve.js || die "(b) require('corral').serve({ fetch })"

# Without optional dependencies, corral installs but must say what is missing and why.
bare="$work/bare"
mkdir -p "$bare" && cd "$bare"
npm init -y >/dev/null
npm install "corral@$VERSION" --omit=optional --registry "$url" >/dev/null ||
    die "installing corral --omit=optional from $url failed (above)"
[ ! -e node_modules/corral-linux-x64-gnu ] || die "--omit=optional installed corral-linux-x64-gnu anyway"
cp "$NPM_DIR/apps/missing_check.js" missing.js
node missing.js || die "(c) require('corral') without its optional package"

say "passed in $((SECONDS - started)) s"
