"""Trims the unpacked sdist that packaging/python.sh repacks (owned by the Python
packaging). The sdist builds the extension on Linux and nothing else, so:

  trim_sdist.py manifest CARGO_TOML
      drops the dev-dependency tables and the [[bench]]/[[test]]/[[example]] targets of a
      Cargo manifest (their sources are not shipped, and their crates need not be vendored);
  trim_sdist.py stub-vendor VENDOR_DIR NEEDED
      empties each vendored crate that no Linux build compiles (NEEDED lists, one
      "name vX.Y.Z" a line, the crates the Linux targets need): only its manifest and an
      empty lib (and build script) stay, which is all cargo reads of a crate it resolves
      but never builds. Its checksum file keeps the package checksum Cargo.lock pins and
      lists no files. This takes out the Windows import libraries and API bindings, three
      quarters of the vendored bytes.
"""

import json
import re
import shutil
import sys
import tomllib
from pathlib import Path


def trim_manifest(path: Path) -> None:
    keep, out = True, []
    for line in path.read_text().splitlines(keepends=True):
        m = re.match(r"\s*(\[\[?)([^\]]+)\]\]?\s*(#.*)?$", line)
        if m:
            name, array = m.group(2).strip(), m.group(1) == "[["
            dev = re.fullmatch(r"(target\.('[^']*'|\"[^\"]*\"|[^.]+)\.)?dev-dependencies(\..+)?", name)
            keep = not (dev or (array and name in ("bench", "test", "example")))
        if keep:
            out.append(line)
    path.write_text("".join(out))


def stub_vendor(vendor: Path, needed_file: Path) -> None:
    needed = set(needed_file.read_text().split("\n"))
    stubbed = []
    for crate in sorted(p for p in vendor.iterdir() if p.is_dir()):
        manifest = tomllib.loads((crate / "Cargo.toml").read_text())
        pkg = manifest["package"]
        if f"{pkg['name']} v{pkg['version']}" in needed:
            continue
        checksum = json.loads((crate / ".cargo-checksum.json").read_text())
        kept = (crate / "Cargo.toml").read_text()
        shutil.rmtree(crate)
        crate.mkdir()
        (crate / "Cargo.toml").write_text(kept)
        lib = crate / manifest.get("lib", {}).get("path", "src/lib.rs")
        lib.parent.mkdir(parents=True, exist_ok=True)
        lib.write_text("// Emptied in this sdist: no Linux build compiles this crate.\n")
        if isinstance(pkg.get("build"), str):
            (crate / pkg["build"]).write_text("fn main() {}\n")
        (crate / ".cargo-checksum.json").write_text(json.dumps({"files": {}, "package": checksum["package"]}))
        stubbed.append(crate.name)
    print(f"emptied {len(stubbed)} crates no Linux build compiles: {' '.join(stubbed)}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "manifest":
        trim_manifest(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "stub-vendor":
        stub_vendor(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit("usage: trim_sdist.py manifest CARGO_TOML | stub-vendor VENDOR_DIR NEEDED")
