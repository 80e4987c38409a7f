#!/usr/bin/env bash
# The Python wheel as a user without Rust gets it (owned by the Python packaging; run
# through packaging/no_rust.sh, so only /usr/bin tools): a fresh venv of /usr/bin/python3,
# corral installed from dist/python only (no index, wheels only, so nothing can compile),
# Flask from PyPI; then, from a directory outside the repository, `python -m corral`
# serves a Flask app and a plain ASGI app (packaging/python/smoke.py checks the replies
# and the clean stop), and readelf checks the installed extension's glibc floor.
set -euo pipefail
die() { printf 'test_python: %s\n' "$*" >&2; exit 1; }
[ -n "${CORRAL_ROOT:-}" ] || die "CORRAL_ROOT is not set: run this as packaging/no_rust.sh packaging/test_python.sh"
GLIBC_FLOOR=2.17
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$CORRAL_ROOT/Cargo.toml" | head -1)"
WHEELS="$CORRAL_ROOT/dist/python"
compgen -G "$WHEELS/corral-$VERSION-*.whl" >/dev/null || die "no corral $VERSION wheel in $WHEELS: run make dist-python first"
t0=$(date +%s)
tmp="$(mktemp -d /tmp/corral-test-python.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 -m venv "$tmp/venv" || die "/usr/bin/python3 -m venv failed (Debian: apt-get install python3-venv)"
pip=("$tmp/venv/bin/pip" --quiet --disable-pip-version-check)
"${pip[@]}" install --no-index --find-links "$WHEELS" --only-binary corral "corral==$VERSION" \
    || die "pip could not install corral $VERSION from the wheels in $WHEELS"
"${pip[@]}" install flask==3.1.3 || die "pip could not install flask==3.1.3 from PyPI"

so="$(cd "$tmp" && "$tmp/venv/bin/python" -c 'import corral._corral as m; print(m.__file__)')"
case "$so" in "$tmp/venv/"*) ;; *) die "corral._corral came from $so, not from the fresh venv" ;; esac
need="$(readelf -V --wide "$so" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
[ -n "$need" ] || die "readelf found no GLIBC symbol versions in $so"
[ "$(printf '%s\n%s\n' "$need" "$GLIBC_FLOOR" | sort -V | tail -1)" = "$GLIBC_FLOOR" ] \
    || die "$(basename "$so") needs GLIBC_$need, above the floor $GLIBC_FLOOR"
printf 'test_python: %s needs at most GLIBC_%s (floor %s)\n' "$(basename "$so")" "$need" "$GLIBC_FLOOR"

cp "$CORRAL_ROOT"/packaging/python/{smoke.py,flask_app.py,asgi_app.py} "$tmp/"
(cd "$tmp" && env -u PYTHONPATH "$tmp/venv/bin/python" smoke.py) || die "serving from the installed wheel failed (see above)"
printf 'test_python: passed in %s s\n' "$(($(date +%s) - t0))"
