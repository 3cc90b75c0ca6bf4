"""Small, careful file-system helpers: atomic writes, hashing, safe names, locks.

Everything the workbench writes that a person keeps goes through
:func:`atomic_write_bytes` / :func:`atomic_write_text`: a reader (or a crash)
sees either the old file or the new one, never half of each.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from filelock import FileLock, Timeout

from workbench.errors import BadInput, WorkbenchError

_CHUNK = 1 << 20


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; what we write should get the usual permissions.
_FILE_MODE = 0o666 & ~_current_umask()


class UnsafePath(BadInput):
    """A file name that would reach outside the folder it is meant for."""


class LockTimeout(WorkbenchError, RuntimeError):
    """Another writer held the lock for longer than we are willing to wait."""


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(folder: Path, name: str, fill) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file in the same folder + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path.parent, path.name, lambda fh: fh.write(data))
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Text version of :func:`atomic_write_bytes` (``\\n`` line endings kept as given)."""
    atomic_write_bytes(path, text.encode(encoding))


def copy_file_exclusive(source: str | Path | BinaryIO, target: str | Path) -> None:
    """Copy into ``target``, which must not exist yet; never overwrites anything.

    The bytes go to a temp file first and are then hard-linked to their name,
    which fails if the name was taken meanwhile (FileExistsError), so a copy is
    never seen half-written and an existing file is never replaced.
    """
    target = Path(target)

    def fill(fh):
        if isinstance(source, (str, Path)):
            with open(source, "rb") as src:
                while chunk := src.read(_CHUNK):
                    fh.write(chunk)
        else:
            while chunk := source.read(_CHUNK):
                fh.write(chunk)

    tmp = _write_temp(target.parent, target.name, fill)
    try:
        try:
            os.link(tmp, target)
        except (NotImplementedError, PermissionError):  # file systems without hard links
            if target.exists():
                raise FileExistsError(target)
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_DIGESTS: dict[tuple[str, int, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()


def cached_file_sha256(path: str | Path) -> str:
    """:func:`file_sha256`, remembered for this process while the file's (path, size, mtime,
    inode) stay the same: thumbnails, features, folds and weight checks ask for the same
    photos' hashes again and again, and a 12 MP JPEG takes ~10 ms to hash."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(key)
    if known is None:
        known = file_sha256(path)  # outside the lock: hashing threads run in parallel
        with _DIGESTS_LOCK:
            _DIGESTS[key] = known
    return known


def forget_file_hashes() -> None:
    """Empty the per-process hash cache (benchmarks use it to stand for a restart)."""
    with _DIGESTS_LOCK:
        _DIGESTS.clear()


def safe_child(folder: str | Path, name: str) -> Path:
    """``folder / name`` when that stays inside ``folder``; else raise :class:`UnsafePath`.

    Refuses empty names, absolute paths, drive letters, ``..`` anywhere, path
    separators (a child is one level deep) and symlinks that resolve outside.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnsafePath("empty file name")
    if "\x00" in name:
        raise UnsafePath(f"{name!r}: file names cannot contain NUL characters")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafePath(f"{name!r} is an absolute path; only a plain file name inside the folder is accepted")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise UnsafePath(f"{name!r} reaches outside the folder ('..')")
    if len(parts) > 1 or name in (".",):
        raise UnsafePath(f"{name!r} is not a plain file name (no folders allowed)")
    folder = Path(folder)
    child = folder / name
    root = folder.resolve()
    resolved = child.resolve()
    if resolved.parent != root and root not in resolved.parents:
        raise UnsafePath(f"{name!r} is a link pointing outside {folder}")
    return child


def require_inside(path: str | Path, roots: Iterable[str | Path]) -> Path:
    """``path`` resolved, when it is a file inside one of ``roots``; else raise :class:`UnsafePath`.

    For paths that arrive from a client (a browser upload names a file on the
    server): without this check a crafted request could name ``/etc/passwd``.
    Links are followed before the check, so one pointing out is refused too.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path) or "\x00" in str(path):
        raise UnsafePath(f"{path!r} is not a file name")
    resolved = Path(path).resolve()
    for root in roots:
        root = Path(root).resolve()
        if resolved == root or root in resolved.parents:
            return resolved
    raise UnsafePath(f"{Path(path).name}: refused, it is not a file this workbench received or keeps")


@contextmanager
def file_lock(lock_path: str | Path, timeout: float = 30.0) -> Iterator[None]:
    """Hold an inter-process lock on ``lock_path`` (created if missing).

    Used around every read-modify-write of shared files so that two browser
    tabs, the CLI and the UI never lose each other's edits.
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise LockTimeout(
            f"{lock_path.parent} is busy: another program kept it locked for over {timeout:.0f} s "
            f"(if none is running, delete {lock_path})"
        ) from exc
    try:
        yield
    finally:
        lock.release()
