"""Create the venv lfads-torch runs in: the pins of requirements.txt, then lfads-torch itself (--no-deps).

    python benchmarks/lfads_torch/setup_venv.py --lfads-torch SOURCE [--venv DIR] [--python PY] [--force]

SOURCE is one of
  * a local lfads-torch checkout (a folder with lfads_torch/ and configs/): copied into the venv;
  * a bare git directory (e.g. a mirror, ``.../lfads-torch/repo``): HEAD's lfads_torch/, configs/,
    setup.py and requirements.txt exported with ``git archive`` into the venv (the mirror may lack
    the large datasets/*.h5 blobs, which are not needed);
  * a git URL, ``git+https://github.com/arsedler9/lfads-torch[@REF]`` (needs internet): pip clones it
    into ``<venv>/src``.
lfads-torch is installed editable (``pip install --no-deps -e``), as its README does: its configs/
folder lives beside the package, not inside it, and the driver reads configs/single.yaml from there.

Idempotent: ``<venv>/bench_stamp.json`` records the requirements' hash, the Python and the source
(with its commit or content hash); when they match, nothing is done. ``--force`` rebuilds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
DEFAULT_VENV = HERE / ".venv"
DEFAULT_PYTHON = "/usr/bin/python3.11"
STAMP = "bench_stamp.json"
SRC_DIR = "lfads-torch-src"  # inside the venv: the exported / copied source lfads-torch is installed from
#: what lfads-torch needs at run time from its source tree (datasets/ is not needed: we write our own file)
NEEDED = ("lfads_torch", "configs", "setup.py", "requirements.txt")
OPTIONAL = ("README.md", "LICENSE", "scripts")


def is_url(source: str) -> bool:
    return source.startswith(("git+", "http://", "https://", "ssh://", "git@"))


def is_bare_git(path: Path) -> bool:
    return path.is_dir() and (path / "HEAD").is_file() and (path / "objects").is_dir() and not (path / ".git").exists()


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _tree_hash(root: Path) -> str:
    """Content hash of a checkout's lfads_torch/ and configs/ (what decides the run)."""
    h = hashlib.sha256()
    for sub in ("lfads_torch", "configs", "setup.py"):
        for path in sorted((root / sub).rglob("*") if (root / sub).is_dir() else [root / sub]):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()[:16]


def describe_source(source: str) -> dict:
    """What the stamp records about SOURCE: its kind and an identity that changes when it does."""
    if is_url(source):
        return {"kind": "git-url", "source": source, "id": source}
    path = Path(source).expanduser().resolve()
    if is_bare_git(path):
        return {"kind": "bare-git", "source": str(path), "id": _git(path, "rev-parse", "HEAD")}
    if (path / "lfads_torch").is_dir() and (path / "configs").is_dir():
        commit = None
        if (path / ".git").exists():
            try:
                commit = _git(path / ".git", "rev-parse", "HEAD")
            except (subprocess.CalledProcessError, FileNotFoundError):
                commit = None
        return {"kind": "checkout", "source": str(path), "id": _tree_hash(path), "commit": commit}
    raise SystemExit(f"--lfads-torch {source}: not a git URL, a bare git directory, or a checkout with "
                     "lfads_torch/ and configs/")


def _export(info: dict, dest: Path) -> None:
    """Put the source tree lfads-torch is installed from at `dest` (bare git: git archive; checkout: copy)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if info["kind"] == "bare-git":
        git_dir = Path(info["source"])
        top = set(_git(git_dir, "ls-tree", "--name-only", "HEAD").split("\n"))
        missing = [p for p in NEEDED if p not in top]
        if missing:
            raise SystemExit(f"{git_dir}: HEAD has no {missing}: is this lfads-torch?")
        paths = list(NEEDED) + [p for p in OPTIONAL if p in top]
        with tempfile.TemporaryFile() as tar:
            # git archive may complain on stderr about blobs a mirror lacks (datasets/*.h5) while still
            # writing every requested path and exiting 0: show its stderr only when it fails.
            done = subprocess.run(["git", f"--git-dir={git_dir}", "archive", "--format=tar", "HEAD", "--", *paths],
                                  stdout=tar, stderr=subprocess.PIPE, text=True)
            if done.returncode:
                raise SystemExit(f"git archive of {git_dir} failed:\n{done.stderr}")
            tar.seek(0)
            subprocess.run(["tar", "-x", "-C", str(dest)], check=True, stdin=tar)
        (dest / "LFADS_TORCH_COMMIT").write_text(info["id"] + "\n")
    else:
        src = Path(info["source"])
        for name in NEEDED + OPTIONAL:
            if (src / name).is_dir():
                shutil.copytree(src / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            elif (src / name).is_file():
                shutil.copy2(src / name, dest / name)
        if info.get("commit"):
            (dest / "LFADS_TORCH_COMMIT").write_text(info["commit"] + "\n")


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _requirements_hash() -> str:
    """Hash of the requirement lines (comments and blank lines left out: editing a comment rebuilds nothing)."""
    lines = [line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    return hashlib.sha256("\n".join(line for line in lines if line).encode()).hexdigest()[:16]


def wanted_stamp(source: str, python: str) -> dict:
    return {"requirements": _requirements_hash(), "python": python, "lfads_torch": describe_source(source)}


def read_stamp(venv: Path) -> dict | None:
    try:
        return json.loads((venv / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _run(cmd: list, **kwargs) -> None:
    print("  $ " + " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def ensure_venv(source: str, venv: Path = DEFAULT_VENV, python: str = DEFAULT_PYTHON, force: bool = False,
                quiet: bool = False) -> Path:
    """The venv's python, after creating / updating the venv when its stamp does not match."""
    venv = Path(venv).resolve()
    want = wanted_stamp(source, python)
    have = read_stamp(venv)
    if not force and have is not None and venv_python(venv).exists() and \
            {k: have.get(k) for k in want} == want:
        if not quiet:
            print(f"lfads-torch venv {venv}: up to date ({want['lfads_torch']['kind']} "
                  f"{want['lfads_torch']['id'][:12]}, requirements {want['requirements']})", flush=True)
        return venv_python(venv)
    print(f"lfads-torch venv {venv}: {'rebuilding' if have else 'creating'} "
          f"(source {want['lfads_torch']['source']})", flush=True)
    if have is None or have.get("python") != python or not venv_python(venv).exists():
        if venv.exists():
            shutil.rmtree(venv)
        _run([python, "-m", "venv", venv])
    (venv / STAMP).unlink(missing_ok=True)
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = [venv_python(venv), "-m", "pip", "install", "--quiet"]
    _run(pip + ["-r", REQUIREMENTS], env=env)
    info = want["lfads_torch"]
    if info["kind"] == "git-url":
        url = info["source"]
        spec = url if url.startswith("git+") else "git+" + url
        if "#egg=" not in spec:
            spec += "#egg=lfads_torch"
        _run(pip + ["--no-deps", "--src", venv / "src", "-e", spec], env=env)
    else:
        dest = venv / SRC_DIR
        _export(info, dest)
        _run(pip + ["--no-deps", "-e", dest], env=env)
    # Check: the package imports from a tree that has configs/single.yaml beside it.
    probe = ("import lfads_torch, pathlib; p = pathlib.Path(lfads_torch.__file__).resolve().parents[1]; "
             "assert (p / 'configs' / 'single.yaml').is_file(), p; print(p)")
    out = subprocess.run([venv_python(venv), "-c", probe], check=True, capture_output=True, text=True).stdout
    print(f"  lfads-torch installed from {out.strip()}", flush=True)
    (venv / STAMP).write_text(json.dumps(want, indent=1))
    return venv_python(venv)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lfads-torch", required=True, metavar="SOURCE",
                   help="checkout folder, bare git dir, or git+https://github.com/arsedler9/lfads-torch")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    p.add_argument("--python", default=DEFAULT_PYTHON)
    p.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    args = p.parse_args(argv)
    print(ensure_venv(args.lfads_torch, args.venv, args.python, args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
