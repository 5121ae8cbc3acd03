"""The carried bundle (``make gpu-bundle``): wheels the bare GPU image lacks, and bubblewrap.

Wheels are installed only where their distribution is missing, with pip's ``--no-index --no-deps
--target`` into a folder the sandbox can see (under the Python installation's prefix, which the
sandbox binds read-only), then put on ``sys.path`` and ``PYTHONPATH`` so the check's children, pytest
and the sandboxed workers (which import ``kernel_env`` and so Gymnasium) all find them. A user site
or a folder under /tmp would be invisible inside bubblewrap. The bubblewrap .deb is unpacked into a
private folder (never over ``/``) and its ``usr/bin`` goes first on ``PATH``. Standard library only:
this runs before anything it installs can be imported.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

FOLDER = ".gpu-bundle"
SITE_NAME = "kernel-env-gpucheck-site"
BWRAP_ROOT = Path(tempfile.gettempdir()) / "kernel-env-gpucheck-bwrap"


def wheels(bundle: Path) -> list[tuple[str, str, Path]]:
    """(distribution, version, path) of every wheel in ``bundle/wheels``, by file name."""
    found = []
    for path in sorted((bundle / "wheels").glob("*.whl")):
        name, version = path.name.split("-")[:2]
        found.append((name.replace("_", "-").lower(), version, path))
    return found


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def debs(bundle: Path) -> list[Path]:
    return sorted((bundle / "debs").glob("bubblewrap_*.deb"))


def describe(bundle: Path) -> dict:
    """What the bundle holds and what of it this Python already has (the dry run's account)."""
    manifest = bundle / "MANIFEST.txt"
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) if bundle.is_dir() else 0
    return {"folder": str(bundle), "present": bundle.is_dir(), "bytes": size,
            "wheels": [{"name": n, "version": v, "installed": installed_version(n)} for n, v, _ in wheels(bundle)],
            "debs": [p.name for p in debs(bundle)],
            "manifest": manifest.read_text().splitlines() if manifest.is_file() else []}


def site_folder() -> Path:
    """Where missing wheels go: under the interpreter's prefix when writable (the sandbox binds it),
    else under /usr/local (bound as part of /usr), else a temporary folder (invisible to bubblewrap)."""
    for base in (Path(sys.prefix), Path("/usr/local/lib")):
        if os.access(base, os.W_OK):
            return base / SITE_NAME
    return Path(tempfile.gettempdir()) / SITE_NAME


def install_missing_wheels(bundle: Path, target: Path | None = None) -> dict:
    """Install the bundle's wheels whose distribution is absent; returns what was done."""
    missing = [(n, v, p) for n, v, p in wheels(bundle) if installed_version(n) is None]
    out = {"target": None, "installed": [f"{n}=={v}" for n, v, _ in missing], "already_there": [], "error": None}
    out["already_there"] = [f"{n}=={installed_version(n)}" for n, _, _ in wheels(bundle) if installed_version(n)]
    if not missing:
        return out
    target = target or site_folder()
    target.mkdir(parents=True, exist_ok=True)
    out["target"] = str(target)
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--upgrade", "--target", str(target), *(str(p) for _, _, p in missing)]
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip()[-800:] or f"pip exited {done.returncode}")
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        out["pip_error"] = str(exc)
        for _, _, path in missing:  # pure wheels: unpacking them is installing them
            with zipfile.ZipFile(path) as archive:
                archive.extractall(target)
    put_on_path(target)
    still = [n for n, _, _ in missing if installed_version(n) is None]
    if still:
        out["error"] = f"still not importable after installing: {', '.join(still)}"
    return out


def put_on_path(folder: Path | str) -> None:
    """First on ``sys.path`` here and on ``PYTHONPATH`` for every process started from here."""
    folder = str(folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != folder]
    os.environ["PYTHONPATH"] = os.pathsep.join([folder, *parts])
    importlib.invalidate_caches()


def provide_bwrap(bundle: Path, root: Path = BWRAP_ROOT) -> dict:
    """The system's bubblewrap, or the carried .deb unpacked into ``root``; either way whether it runs."""
    out = {"source": None, "path": shutil.which("bwrap"), "deb": None, "version": None, "error": None}
    if out["path"]:
        out["source"] = "system"
    elif debs(bundle):
        deb = debs(bundle)[-1]
        out.update(source="carried", deb=deb.name)
        try:
            unpack_deb(deb, root)
        except (OSError, RuntimeError, tarfile.TarError, subprocess.SubprocessError) as exc:
            out["error"] = f"could not unpack {deb.name}: {exc}"
            return out
        os.environ["PATH"] = os.pathsep.join([str(root / "usr" / "bin"), os.environ.get("PATH", "")])
        out["path"] = shutil.which("bwrap")
    else:
        out["error"] = "no bwrap on PATH and no bubblewrap .deb in the bundle"
        return out
    try:
        ran = subprocess.run([out["path"] or "bwrap", "--version"], check=False, capture_output=True, text=True, timeout=30)
        out["version"] = ran.stdout.strip() or None
        if ran.returncode != 0:
            out["error"] = (ran.stderr.strip() or f"bwrap --version exited {ran.returncode}")[-500:]
    except OSError as exc:
        out["error"] = f"bwrap does not start: {exc}"
    return out


def unpack_deb(deb: Path, root: Path) -> None:
    """``dpkg -x`` where dpkg exists; else read the ar archive and its data.tar.* here."""
    root.mkdir(parents=True, exist_ok=True)
    if shutil.which("dpkg"):
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, capture_output=True, timeout=120)
        return
    data = next(((name, blob) for name, blob in ar_members(deb.read_bytes()) if name.startswith("data.tar")), None)
    if data is None:
        raise RuntimeError("no data.tar.* member")
    if data[0].endswith(".zst"):
        raise RuntimeError("data.tar.zst needs dpkg or zstd (Python's tarfile has no zstd before 3.14)")
    with tempfile.NamedTemporaryFile(suffix=data[0]) as tmp:
        tmp.write(data[1])
        tmp.flush()
        with tarfile.open(tmp.name) as archive:
            archive.extractall(root, filter="data") if hasattr(tarfile, "data_filter") else archive.extractall(root)


def ar_members(blob: bytes) -> list[tuple[str, bytes]]:
    """The members of a Unix ar archive (a .deb is one): 60-byte headers, even-aligned bodies."""
    if not blob.startswith(b"!<arch>\n"):
        raise RuntimeError("not an ar archive")
    members, at = [], 8
    while at + 60 <= len(blob):
        header = blob[at:at + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        members.append((name, blob[at + 60:at + 60 + size]))
        at += 60 + size + (size % 2)
    return members


def prepare(bundle: Path, dry: bool) -> dict:
    """Install what is missing and provide bubblewrap (a real run); only describe it (a dry run)."""
    if dry:
        return {"dry": True, **describe(bundle)}
    return {"dry": False, **describe(bundle), "wheels_done": install_missing_wheels(bundle),
            "bwrap": provide_bwrap(bundle)}
