#!/usr/bin/env bash
# Owns the no-Rust install test of dist/c/ (run by `make dist-test` as
# `packaging/no_rust.sh packaging/test_c.sh`): installs the tarball and the .deb the way a
# C user would, builds the shipped examples with pkg-config alone and runs them over
# loopback, links libcorral.a statically, checks the glibc floor and that `dpkg -r`
# leaves nothing behind. Uses only the system's tools (gcc, pkg-config, readelf, dpkg).
set -euo pipefail
ROOT="${CORRAL_ROOT:?CORRAL_ROOT is not set: run this as packaging/no_rust.sh packaging/test_c.sh}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
GLIBC_FLOOR=2.17 # packaging/lib.sh's: every binary artifact runs on glibc 2.17 and later
NAME="corral-$VERSION-x86_64-linux-gnu"
TARBALL="$ROOT/dist/c/$NAME.tar.gz"
DEB="$ROOT/dist/c/libcorral_${VERSION}_amd64.deb"
# The examples compile warning-free as C99; echo_handoff starts a thread.
CFLAGS=(-std=c99 -Wall -Wextra -Werror -pedantic -pthread)
# A run that hangs fails the test instead of blocking CI.
RUN_LIMIT=60

say() { printf 'test_c: %s\n' "$*" >&2; }
die() { printf 'test_c: FAILED: %s\n' "$*" >&2; exit 1; }

started=$SECONDS
for f in "$TARBALL" "$DEB"; do
    [ -f "$f" ] || die "$f is missing: run \`make dist-c\` first"
done
# dpkg and apt-get run as root with the sbin directories they need (ldconfig) on PATH;
# no_rust.sh's PATH has only /usr/bin:/bin.
as_root=(env PATH="/usr/sbin:/sbin:$PATH")
if [ "$(id -u)" != 0 ]; then
    sudo -n true 2>/dev/null || die "installing the .deb needs root (or password-less sudo)"
    as_root=(sudo -n "${as_root[@]}")
fi
if ! command -v pkg-config >/dev/null; then
    command -v apt-get >/dev/null || die "pkg-config is missing and there is no apt-get: install pkg-config"
    say "installing pkg-config"
    "${as_root[@]}" apt-get update -qq && "${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pkg-config >/dev/null
fi
for tool in gcc pkg-config readelf ldd dpkg tar timeout; do
    command -v "$tool" >/dev/null || die "$tool is missing: install gcc, pkg-config, binutils and dpkg"
done

work="$(mktemp -d /tmp/corral-test-c.XXXXXX)"
deb_installed=0
cleanup() {
    if [ "$deb_installed" = 1 ]; then
        say "removing libcorral after a failure"
        "${as_root[@]}" dpkg -r libcorral >/dev/null || say "dpkg -r libcorral failed: remove it by hand"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# run WHAT PROGRAM [ARGS...]: runs an example under the time limit, output shown.
run() {
    local what="$1"
    shift
    timeout "$RUN_LIMIT" "$@" >&2 || die "$what: $* exited with status $? (124: ran past ${RUN_LIMIT} s)"
}

# The highest GLIBC_x.y symbol version an ELF file needs.
glibc_needed() {
    readelf -V --wide "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1 | grep . || echo none
}

# --- the tarball: anywhere, found through PKG_CONFIG_PATH and LD_LIBRARY_PATH ---------
say "tarball: $TARBALL"
tar -xzf "$TARBALL" -C "$work"
prefix="$work/$NAME"
[ -d "$prefix" ] || die "$TARBALL has no top folder $NAME/"
so="$prefix/lib/libcorral.so.$VERSION"
readelf -d "$so" | grep -q 'Library soname: \[libcorral\.so\.' || die "$so has no libcorral.so.* SONAME"
soname="$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
[ "$(readlink "$prefix/lib/$soname")" = "libcorral.so.$VERSION" ] || die "lib/$soname is not a link to libcorral.so.$VERSION"
[ "$(readlink "$prefix/lib/libcorral.so")" = "$soname" ] || die "lib/libcorral.so is not a link to $soname"
need="$(glibc_needed "$so")"
say "readelf -V $(basename "$so"): GLIBC versions needed: $(readelf -V --wide "$so" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tr '\n' ' ')"
if [ "$need" != none ] && [ "$(printf '%s\n%s\n' "$need" "$GLIBC_FLOOR" | sort -V | tail -1)" != "$GLIBC_FLOOR" ]; then
    die "$so needs GLIBC_$need, above the floor $GLIBC_FLOOR"
fi
say "$(basename "$so") (SONAME $soname): highest GLIBC symbol version $need, floor $GLIBC_FLOOR"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion corral)" = "$VERSION" ] || die "pkg-config finds corral $(pkg-config --modversion corral), not $VERSION"
say "pkg-config --cflags --libs corral: $(pkg-config --cflags --libs corral)"
examples="$prefix/share/corral/examples"
for ex in hello_serve echo_handoff; do
    # shellcheck disable=SC2046 # pkg-config's flags are meant to be split
    gcc "${CFLAGS[@]}" "$examples/$ex.c" $(pkg-config --cflags --libs corral) -o "$work/$ex"
done
ldd_line="$(LD_LIBRARY_PATH="$prefix/lib" ldd "$work/hello_serve" | grep libcorral || true)"
[[ "$ldd_line" == *"=> $prefix/lib/$soname "* ]] || die "hello_serve does not load the tarball's library: $ldd_line"
run "tarball, shared" env LD_LIBRARY_PATH="$prefix/lib" "$work/hello_serve"
run "tarball, shared" env LD_LIBRARY_PATH="$prefix/lib" "$work/echo_handoff" --self-test

# Static: libcorral.a with the system libraries of Libs.private (no libcorral.so needed).
static_libs="$(pkg-config --static --libs corral | sed 's/-lcorral\b/-l:libcorral.a/')"
say "static link flags: $static_libs"
# shellcheck disable=SC2046,SC2086
gcc "${CFLAGS[@]}" "$examples/hello_serve.c" $(pkg-config --cflags corral) $static_libs -o "$work/hello_static"
if readelf -d "$work/hello_static" | grep -q 'libcorral'; then
    die "hello_static still needs libcorral.so: the static link did not use libcorral.a"
fi
run "tarball, static" "$work/hello_static"
unset PKG_CONFIG_PATH

# --- the .deb: /usr, found with no paths at all --------------------------------------
say "deb: $DEB"
if dpkg -s libcorral >/dev/null 2>&1; then
    die "libcorral is already installed here; this test installs and removes it: run \`dpkg -r libcorral\` first"
fi
if pkg-config --exists corral; then
    die "a corral.pc is already on pkg-config's path ($(pkg-config --variable=pcfiledir corral)): remove that install first"
fi
deb_installed=1
"${as_root[@]}" dpkg -i "$DEB" >&2
installed="$(dpkg -L libcorral)"
[ "$(pkg-config --modversion corral)" = "$VERSION" ] || die "after dpkg -i, pkg-config finds corral $(pkg-config --modversion corral || true), not $VERSION"
say "pkg-config --cflags --libs corral: '$(pkg-config --cflags --libs corral)'"
# The command the packaged README gives, as is; then the stricter flags.
# shellcheck disable=SC2046
cc /usr/share/corral/examples/hello_serve.c $(pkg-config --cflags --libs corral) -o "$work/deb_hello_serve"
# shellcheck disable=SC2046
gcc "${CFLAGS[@]}" /usr/share/corral/examples/echo_handoff.c $(pkg-config --cflags --libs corral) -o "$work/deb_echo_handoff"
ldd_line="$(ldd "$work/deb_hello_serve" | grep libcorral || true)"
# (With merged /usr, ld.so may name it /lib/x86_64-linux-gnu/...: the same file.)
loaded="$(awk '{print $3}' <<< "$ldd_line")"
[ "$(readlink -f "${loaded:-none}")" = "$(readlink -f "/usr/lib/x86_64-linux-gnu/$soname")" ] \
    || die "the program does not load /usr/lib/x86_64-linux-gnu/$soname: $ldd_line"
say "ldd: ${ldd_line//$'\t'/}"
run "deb" env -u LD_LIBRARY_PATH "$work/deb_hello_serve"
run "deb" env -u LD_LIBRARY_PATH "$work/deb_echo_handoff" --self-test

"${as_root[@]}" dpkg -r libcorral >&2
deb_installed=0
dpkg -s libcorral >/dev/null 2>&1 && die "dpkg -r libcorral left the package installed"
left=""
while IFS= read -r path; do
    # Directories dpkg keeps because other packages own them (/usr, /usr/include...) stay.
    if [ -e "$path" ] && [ ! -d "$path" ] || [ -L "$path" ]; then left="$left $path"; fi
done <<< "$installed"
[ -z "$left" ] || die "dpkg -r libcorral left files behind:$left"
for d in /usr/share/corral /usr/share/doc/libcorral; do
    [ ! -e "$d" ] || die "dpkg -r libcorral left $d behind"
done
say "dpkg -r libcorral removed all $(grep -c . <<< "$installed") paths it installed"
say "all passed in $((SECONDS - started)) s"
