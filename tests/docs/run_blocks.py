"""Runs every fenced code block of README.md and docs/*.md, so no example rots; owned by
the docs (`make docs-test`, part of `make test`). One line per block (file:line language
result), then `N passed, N failed`; exit 1 on any failure. Also checks that every
relative link of those pages points at an existing file (and heading, for #anchors).

The rule for each kind of block:
- ```python, ```js (or javascript), ```c are complete programs: run in a temporary
  directory of their page (python: the repository's .venv python; js: /usr/bin/node with
  `require('corral')` resolving to bindings/node; c: compiled with -std=c99 -Wall -Wextra
  -Werror against include/ and target/release/libcorral.so). A block whose info string
  says `file=NAME` is an app module the page's later blocks use: it is written there as
  NAME, not run by itself.
- A program that prints `listening on http://HOST:PORT` is a server: it must answer
  `GET /` with 200, then SIGTERM must make it exit 0. Any other program must exit 0.
- ```rust blocks are doctests of the core crate (core/src/doc_examples.rs includes each
  page that has them; `cargo test --doc` in `make unit` runs them): checked here only
  for being included.
- ```sh: `make` lines are checked with `make -n` (running them here would recurse into
  `make test`, or they are the artifacts' own proof, like `make dist`); install lines
  (pip/npm/dpkg/tar of dist/) are checked for naming files packaging/ produces (they are
  proven by `make dist-test`); a block of one `corral`, `python -m corral` or
  `npx corral` command is a server, run as above in its page's directory with its
  `--port` set to 0 (a fixed port may be taken on a shared machine; `npx X` runs
  node_modules/.bin/X, what npx would, since npx itself dies of SIGTERM); anything else runs
  with bash in its page's directory.
- ```text is output or a listing, not code. A block with no language, or another one,
  fails: say what it is.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
DEADLINE = 90.0  # seconds per block: imports and a C compile on a loaded 2-core machine
LISTENING = re.compile(r"listening on http://(\[[^\]]+\]|[^:\s]+):(\d+)")
PY = ROOT / ".venv" / "bin" / "python"
NODE = "/usr/bin/node"
LIB = ROOT / "target" / "release"
SERVER_COMMANDS = ("corral ", "python -m corral ", "npx corral ")
INSTALL = re.compile(r"^(sudo )?(pip install|npm install|dpkg -i|tar )")


class Block:
    def __init__(self, page: Path, line: int, info: str, text: str) -> None:
        self.page, self.line, self.text = page, line, text
        words = info.split()
        self.lang = words[0] if words else ""
        attrs = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        self.file: Optional[str] = attrs.get("file")

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> List[Block]:
    out, lines, i = [], page.read_text().splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(```+)(.*)$", lines[i])
        if not m:
            i += 1
            continue
        fence, start, body = m.group(1), i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise SystemExit(f"{page.relative_to(ROOT)}:{start}: a code block that never closes")
        out.append(Block(page, start, m.group(2).strip(), "\n".join(body) + "\n"))
        i += 1
    return out


def run(cmd: List[str], cwd: Path, env: dict) -> Tuple[bool, str]:
    """Runs a program to its end, or (when it says it listens) as a server: GET / must
    answer 200 and SIGTERM must end it with 0."""
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    assert p.stdout is not None
    fd, out, eof = p.stdout.fileno(), [], False
    end = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < end:
            if not eof and select.select([fd], [], [], 0.05)[0]:
                chunk = os.read(fd, 65536)
                eof = not chunk
                out.append(chunk.decode(errors="replace"))
            m = LISTENING.search("".join(out))
            if m:
                return serve_check(p, m.group(1).strip("[]"), int(m.group(2)), out, end)
            if eof and p.poll() is not None:
                return (p.returncode == 0, "".join(out) + f"\nexited {p.returncode}" if p.returncode else "exited 0")
            if eof:
                time.sleep(0.02)
        return False, "".join(out) + f"\nstill running after {DEADLINE:.0f} s"
    finally:
        try:  # the program, and anything it left running in its process group
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def serve_check(p: subprocess.Popen, host: str, port: int, out: List[str], end: float) -> Tuple[bool, str]:
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    try:
        with urllib.request.urlopen(url, timeout=max(1.0, end - time.monotonic())) as r:
            status, body = r.status, r.read(200)
    except Exception as e:  # noqa: BLE001 - any failure to get an answer is the block's
        return False, "".join(out) + f"\nGET {url} failed: {e}"
    if status != 200:
        return False, "".join(out) + f"\nGET {url} answered {status}"
    os.killpg(p.pid, signal.SIGTERM)  # to its process group, as a service manager or Ctrl-C does
    try:
        code = p.wait(timeout=max(1.0, end - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False, "".join(out) + "\nstill running after SIGTERM"
    if code != 0:
        return False, "".join(out) + f"\nexited {code} after SIGTERM"
    return True, f"server: GET / answered 200 ({body[:20]!r}), SIGTERM exited 0"


def env_for(workdir: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{PY.parent}:{workdir / 'node_modules' / '.bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["NODE_PATH"] = str(ROOT / "bindings" / "node" / "node_modules")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("LISTEN_FDS", None)
    return env


def page_dir(tmp: Path, page: Path) -> Path:
    d = tmp / page.stem
    if not d.exists():
        (d / "node_modules" / ".bin").mkdir(parents=True)
        (d / "node_modules" / "corral").symlink_to(ROOT / "bindings" / "node")
        (d / "node_modules" / ".bin" / "corral").symlink_to(ROOT / "bindings" / "node" / "bin" / "corral.js")
    return d


def packaged_names() -> str:
    """What packaging/ can produce: its scripts' text and what dist/ holds now."""
    text = "\n".join(p.read_text() for p in sorted((ROOT / "packaging").glob("*.sh")))
    dist = ROOT / "dist"
    if dist.is_dir():
        text += "\n" + "\n".join(str(p.relative_to(ROOT)) for p in dist.rglob("*"))
    return text


def version() -> str:
    m = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    return m.group(1) if m else "?"


def check_install(line: str, names: str) -> Optional[str]:
    """An install line must name files packaging/ produces: each dist/ path must be in
    dist/ now, or be spelled by a packaging script (with the version as a variable)."""
    ver = version()
    for path in re.findall(r"dist/[\w./+-]+", line):
        base = path.rstrip("/").split("/")[-1]
        if path.rstrip("/") in names or not base.count("."):
            continue  # in dist/ now, or a folder (dist/python)
        pattern = re.escape(base).replace(re.escape(ver), r"(" + re.escape(ver) + r"|\$\{?VERSION\}?|VERSION)")
        if not re.search(pattern, names):
            return f"{path}: packaging/*.sh does not produce this name (and dist/ does not hold it)"
    return None


def sh_block(b: Block, workdir: Path, names: str) -> Tuple[bool, str]:
    lines = [ln for ln in (l.split(" #")[0].strip() for l in b.text.replace("\\\n", " ").splitlines())
             if ln and not ln.startswith("#")]
    if len(lines) == 1 and lines[0].startswith(SERVER_COMMANDS):
        argv = shlex.split(lines[0])
        for i, a in enumerate(argv[:-1]):
            if a == "--port":
                argv[i + 1] = "0"
        if argv[0] == "python":
            argv[0] = str(PY)
        if argv[0] == "npx":  # npm's launcher dies of SIGTERM itself: run what it runs, check that
            argv = [str(workdir / "node_modules" / ".bin" / argv[1])] + argv[2:]
        return run(argv, workdir, env_for(workdir))
    if lines and all(ln.startswith("make ") for ln in lines):
        for ln in lines:
            r = subprocess.run(["make", "-n", "-C", str(ROOT)] + shlex.split(ln)[1:], capture_output=True, text=True)
            if r.returncode != 0:
                return False, f"make -n {ln[5:]}: {r.stderr.strip()}"
        return True, "checked with make -n (running it here would recurse into make test, or is the artifact's own proof)"
    if any(INSTALL.match(ln) for ln in lines):
        for ln in lines:
            why = check_install(ln, names) if INSTALL.match(ln) else None
            if why:
                return False, why
        return True, "install: checked that packaging/ produces the files it names (proven by make dist-test)"
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", b.text], cwd=workdir, env=env_for(workdir),
                       capture_output=True, text=True, timeout=DEADLINE)
    return r.returncode == 0, (r.stdout + r.stderr) if r.returncode else "executed with bash, exit 0"


def run_block(b: Block, tmp: Path, included: str, names: str) -> Tuple[Optional[bool], str]:
    workdir = page_dir(tmp, b.page)
    if b.lang in ("python", "js", "javascript", "c") and b.file:
        (workdir / b.file).write_text(b.text)
        return True, f"written as {b.file} for the blocks after it"
    src = workdir / f"block{b.line}"
    if b.lang == "python":
        src = src.with_suffix(".py")
        src.write_text(b.text)
        return run([str(PY), src.name], workdir, env_for(workdir))
    if b.lang in ("js", "javascript"):
        src = src.with_suffix(".js")
        src.write_text(b.text)
        return run([NODE, src.name], workdir, env_for(workdir))
    if b.lang in ("c", "cpp"):
        cpp = b.lang == "cpp"
        src = src.with_suffix(".cpp" if cpp else ".c")
        src.write_text(b.text)
        cc = ["g++", "-std=c++17"] if cpp else ["gcc", "-std=c99"]
        r = subprocess.run(cc + ["-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'include'}", src.name, "-o", src.stem,
                                 f"-L{LIB}", f"-Wl,-rpath,{LIB}", "-lcorral", "-lpthread"],
                           cwd=workdir, capture_output=True, text=True, timeout=DEADLINE)
        if r.returncode != 0:
            return False, "does not compile:\n" + r.stderr
        return run([str(workdir / src.stem)], workdir, env_for(workdir))
    if b.lang == "rust":
        name = str(b.page.relative_to(ROOT))
        if f'include_str!("../../{name}")' not in included:
            return False, f"core/src/doc_examples.rs does not include {name}, so cargo test --doc would not run it"
        return None, "a doctest of the core crate (cargo test --doc, in make unit)"
    if b.lang in ("sh", "bash", "shell"):
        return sh_block(b, workdir, names)
    if b.lang == "text":
        return None, "output or a listing, not code"
    return False, f"a block of language {b.lang or '(none)'}: give it one this runner knows (python, js, c, rust, sh, text)"


def slug(heading: str) -> str:
    h = re.sub(r"[`*_\[\]()]", lambda m: "_" if m.group(0) == "_" else "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", h).replace(" ", "-")


def check_links(page: Path) -> List[str]:
    bad = []
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{page.relative_to(ROOT)}: link to {target}: no such file")
        elif anchor and dest.suffix == ".md":
            heads = [slug(h) for h in re.findall(r"^#+ (.*)$", dest.read_text(), re.M)]
            if anchor not in heads:
                bad.append(f"{page.relative_to(ROOT)}: link to {target}: no such heading")
    return bad


def main() -> int:
    for need in (PY, LIB / "libcorral.so", ROOT / "bindings" / "node" / "index.js"):
        if not need.exists():
            print(f"run_blocks: {need} is missing: run `make c-build py-build node-build` (make docs-test does)")
            return 1
    t0 = time.monotonic()
    included = (ROOT / "core" / "src" / "doc_examples.rs").read_text()
    names = packaged_names()
    passed = failed = 0
    counts: dict = {}
    with tempfile.TemporaryDirectory(prefix="corral-docs-") as tmp:
        for page in PAGES:
            for b in blocks(page):
                try:
                    ok, why = run_block(b, Path(tmp), included, names)
                except subprocess.TimeoutExpired:
                    ok, why = False, f"still running after {DEADLINE:.0f} s"
                kind = "checked" if ok is None else ("passed" if ok else "FAILED")
                counts[b.lang] = counts.get(b.lang, 0) + 1
                first = why.strip().splitlines()[0] if ok is not False else why.strip()
                print(f"{b.where()} {b.lang or '-'} {kind}: {first}", flush=True)
                if ok is False:
                    failed += 1
                else:
                    passed += 1
    for page in PAGES:
        for bad in check_links(page):
            print(f"FAILED {bad}")
            failed += 1
    langs = ", ".join(f"{n} {lang}" for lang, n in sorted(counts.items()))
    print(f"{passed} passed, {failed} failed ({langs}; {time.monotonic() - t0:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
