#!/usr/bin/env bash
# Owns dist/c/: the C library packaged for machines without Rust (`make dist-c`).
#   corral-VERSION-x86_64-linux-gnu.tar.gz  a relocatable prefix tree (include/, lib/ with
#                                           a corral.pc that finds itself via ${pcfiledir})
#   libcorral_VERSION_amd64.deb             the same files under /usr, libraries in the
#                                           Debian multiarch dir
# libcorral is linked with zig against glibc 2.17 (cargo-zigbuild), like the wheel and the
# Node addon. Laying out the prefix is what cargo-c would do; we do it here by hand rather
# than compile cargo-c, since ffi/ already builds both libraries and sets the SONAME.
# packaging/test_c.sh installs both artifacts without Rust and runs C programs on them.
# shellcheck source=packaging/lib.sh
source "$(dirname "$0")/lib.sh"

TRIPLE=x86_64-linux-gnu
MULTIARCH_LIBDIR=lib/$TRIPLE
NAME="corral-$VERSION-$TRIPLE"
OUT="$DIST/c"
major="${VERSION%%.*}"
minor="$(echo "$VERSION" | cut -d. -f2)"
# The ABI version in the SONAME: 0.MINOR before 1.0, then MAJOR (as ffi/build.rs sets it).
if [ "$major" = 0 ]; then SOVERSION="0.$minor"; else SOVERSION="$major"; fi
SONAME="libcorral.so.$SOVERSION"
LICENSE="$(sed -n 's/^license = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
HOMEPAGE="$(sed -n 's/^repository = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
# Timestamps inside the archives: the last commit's, so rebuilding one commit gives the
# same tar and deb members.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}"

for tool in cargo-zigbuild readelf strip dpkg-deb gcc; do
    command -v "$tool" >/dev/null || die "$tool not found: run \`make dist-env\` (cargo-zigbuild) or install binutils, gcc and dpkg"
done

started=$SECONDS
say "building libcorral $VERSION for $ZIG_TARGET (cargo zigbuild, target dir $CARGO_TARGET_DIR)"
(cd "$ROOT" && cargo zigbuild --release --target "$ZIG_TARGET" -p corral-ffi)
built="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"
for f in libcorral.so libcorral.a; do
    [ -f "$built/$f" ] || die "cargo zigbuild left no $f in $built: see the cargo output above"
done
got_soname="$(readelf -d "$built/libcorral.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[ "$got_soname" = "$SONAME" ] \
    || die "libcorral.so has SONAME '${got_soname:-none}', wanted $SONAME: is the -soname link arg of ffi/build.rs still passed?"
check_glibc_floor "$built/libcorral.so"

work="$(mktemp -d /tmp/corral-dist-c.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# Debug info stripped once: the packages keep the symbol tables but not the DWARF of the
# release profile's debug = 1 (libcorral.so: 6.3 MB to 1.2 MB; libcorral.a: 17 MB to 5 MB).
strip --strip-debug -o "$work/libcorral.so" "$built/libcorral.so"
strip --strip-debug -o "$work/libcorral.a" "$built/libcorral.a"

# The examples that build with nothing but corral.h (http_serve.c needs the C tests'
# helpers, so it stays in the repository), and hello_serve.c, the packages' own check.
examples=("$ROOT/packaging/c/hello_serve.c")
for f in "$ROOT"/examples/c/*.c; do
    grep -q '#include "\.\./' "$f" || examples+=("$f")
done
for f in "${examples[@]}"; do
    gcc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$ROOT/include" "$f" \
        || die "example $f does not compile against include/corral.h alone; fix it or stop shipping it"
done

# stage DEST LIBDIR DOCDIR PC_PREFIX: the prefix tree under DEST, libraries in DEST/LIBDIR,
# documents in DEST/DOCDIR, corral.pc with prefix=PC_PREFIX.
stage() {
    local dest="$1" libdir="$2" docdir="$3" pc_prefix="$4"
    install -d "$dest/include" "$dest/$libdir/pkgconfig" "$dest/$docdir" "$dest/share/corral/examples"
    install -m 644 "$ROOT/include/corral.h" "$dest/include/corral.h"
    install -m 644 "$work/libcorral.so" "$dest/$libdir/libcorral.so.$VERSION"
    ln -s "libcorral.so.$VERSION" "$dest/$libdir/$SONAME"
    ln -s "$SONAME" "$dest/$libdir/libcorral.so"
    install -m 644 "$work/libcorral.a" "$dest/$libdir/libcorral.a"
    # ffi/corral.pc.in has libdir=${prefix}/lib; the multiarch layout moves it.
    sed -e "s|@PREFIX@|$pc_prefix|" -e "s|@VERSION@|$VERSION|" \
        -e "s|^libdir=\${prefix}/lib\$|libdir=\${prefix}/$libdir|" \
        "$ROOT/ffi/corral.pc.in" > "$dest/$libdir/pkgconfig/corral.pc"
    grep -qx "libdir=\${prefix}/$libdir" "$dest/$libdir/pkgconfig/corral.pc" \
        || die "could not set libdir in corral.pc: ffi/corral.pc.in no longer has the line libdir=\${prefix}/lib"
    install -m 644 "${examples[@]}" "$dest/share/corral/examples/"
    cat > "$dest/$docdir/README" <<EOF
corral $VERSION: libcorral, the C ABI of corral, a multi-listener accept and
work-stealing dispatch engine. Documentation: README.md and include/corral.h in the
source repository, $HOMEPAGE

Licence: $LICENSE.

Build a program against it (the examples are in share/corral/examples/):
    cc hello_serve.c \$(pkg-config --cflags --libs corral) -o hello_serve
Static linking: pkg-config --static --libs corral gives the system libraries it needs.
EOF
    if [ -f "$ROOT/CHANGELOG.md" ]; then install -m 644 "$ROOT/CHANGELOG.md" "$dest/$docdir/CHANGELOG.md"; fi
}

# A tar of a tree with fixed owners, order and times.
tar_tree() { # DIR_TO_CD NAME OUT
    tar -C "$1" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
        -cf - "$2" | gzip -n -9 > "$3"
}

mkdir -p "$OUT"
rm -f "$OUT"/corral-*-"$TRIPLE".tar.gz "$OUT"/libcorral_*_amd64.deb

# The tarball: one folder, relocatable (pkg-config expands ${pcfiledir} to the folder
# the .pc is in, wherever the tree was extracted).
# shellcheck disable=SC2016 # ${pcfiledir} is for pkg-config to expand, not the shell
stage "$work/tar/$NAME" lib share/doc/corral '${pcfiledir}/../..'
tarball="$OUT/$NAME.tar.gz"
tar_tree "$work/tar" "$NAME" "$tarball"

# The .deb: /usr, the multiarch libdir the compiler and ld.so search by default.
deb_root="$work/deb"
stage "$deb_root/usr" "$MULTIARCH_LIBDIR" share/doc/libcorral /usr
# Debian's copyright file, and a one-entry Debian changelog pointing at CHANGELOG.md.
printf 'Copyright (c) %s the corral developers\nLicence: %s (the Apache-2.0 text is in\n/usr/share/common-licenses/Apache-2.0)\nSource: %s\n' \
    "$(date -u +%Y -d "@$SOURCE_DATE_EPOCH")" "$LICENSE" "$HOMEPAGE" > "$deb_root/usr/share/doc/libcorral/copyright"
printf 'libcorral (%s) unstable; urgency=medium\n\n  * corral %s: see CHANGELOG.md in this folder.\n\n -- %s  %s\n' \
    "$VERSION" "$VERSION" "$(sed -n 's/^Maintainer: //p' "$ROOT/packaging/c/control.in")" \
    "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" | gzip -9n > "$deb_root/usr/share/doc/libcorral/changelog.gz"
install -d "$deb_root/DEBIAN"
sed -e "s|@VERSION@|$VERSION|" -e "s|@HOMEPAGE@|$HOMEPAGE|" -e "s|@SONAME@|$SONAME|" \
    -e "s|@INSTALLED_SIZE@|$(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)|" \
    "$ROOT/packaging/c/control.in" > "$deb_root/DEBIAN/control"
# ldconfig runs after install and removal (libc-bin's trigger); programs linked against
# the SONAME depend on this package (shlibs).
echo 'activate-noawait ldconfig' > "$deb_root/DEBIAN/triggers"
echo "libcorral $SOVERSION libcorral (>= $VERSION)" > "$deb_root/DEBIAN/shlibs"
(cd "$deb_root" && find usr -type f | LC_ALL=C sort | xargs md5sum) > "$deb_root/DEBIAN/md5sums"
deb="$OUT/libcorral_${VERSION}_amd64.deb"
dpkg-deb --root-owner-group --build "$deb_root" "$deb" >/dev/null

# The .deb holds exactly what was staged, with the fields dpkg will read.
want="$(cd "$deb_root" && find usr \( -type f -o -type l \) | sed 's|^|./|' | LC_ALL=C sort)"
have="$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | LC_ALL=C sort)"
[ "$want" = "$have" ] || die "$deb holds other files than staged: $(diff <(echo "$want") <(echo "$have") || true)"
for field in Package:libcorral Version:"$VERSION" Architecture:amd64 "Depends:libc6 (>= 2.17)"; do
    [ "$(dpkg-deb -f "$deb" "${field%%:*}")" = "${field#*:}" ] || die "$deb: ${field%%:*} is not '${field#*:}'"
done
dpkg-deb -c "$deb" | grep -q " ./usr/$MULTIARCH_LIBDIR/$SONAME -> libcorral.so.$VERSION\$" \
    || die "$deb: $SONAME is not a link to libcorral.so.$VERSION"

dpkg-deb -I "$deb" >&2
dpkg-deb -c "$deb" >&2
tar -tvzf "$tarball" >&2
say "libcorral.so $(du -k "$built/libcorral.so" | cut -f1) KiB as built, $(du -k "$work/libcorral.so" | cut -f1) KiB stripped;" \
    "libcorral.a $(du -k "$built/libcorral.a" | cut -f1) KiB as built, $(du -k "$work/libcorral.a" | cut -f1) KiB stripped"
say "$(basename "$tarball"): $(du -k "$tarball" | cut -f1) KiB"
say "$(basename "$deb"): $(du -k "$deb" | cut -f1) KiB"
say "dist/c done in $((SECONDS - started)) s"
