"""Where generated kernel modules and Numba's cache of them live: directories only
the current user can write.

btcore imports the kernel modules it writes and Numba unpickles its index from
its cache directory, so both must be private: :func:`kernel_dir` picks (or
refuses) the directory, :func:`private_dir` creates components mode 0700 and
checks existing ones, :func:`write_private` replaces a file atomically (a planted
file or symlink is replaced, never followed) and :func:`read_regular` never
reads through a symlink.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import shlex
import stat
import tempfile

_FIX = "set BTCORE_KERNEL_DIR to a directory you own with mode 0700"


class UnsafeKernelDirError(PermissionError):
    """A kernel or cache directory that someone else could write: btcore imports
    modules and Numba unpickles its index from there, so it refuses it."""


def private_dir(path) -> pathlib.Path:
    """``path`` as a directory only the current user can write.

    Components btcore creates are made mode 0700 (chmod after mkdir, whatever the
    umask); an existing directory must be owned by the current user and not be
    writable by group or others, else :class:`UnsafeKernelDirError`.
    """
    path = pathlib.Path(path)
    missing = []
    for parent in (path, *path.parents):
        if os.path.lexists(parent):
            break
        missing.append(parent)
    for component in reversed(missing):
        try:
            os.mkdir(component, 0o700)
        except FileExistsError:  # made meanwhile (another process): checked below
            continue
        os.chmod(component, 0o700)
    problem = _unsafe(path)
    if problem:
        raise UnsafeKernelDirError(f"refusing {problem}")
    return path


def _unsafe(path: pathlib.Path) -> str | None:
    """Why ``path`` may not hold kernel modules or Numba's cache (None if it may)."""
    status = os.stat(path)  # a symlink counts as its target
    if not stat.S_ISDIR(status.st_mode):
        return f"{str(path)!r}: not a directory; {_FIX}"
    if status.st_uid != os.geteuid():
        return (f"{str(path)!r}: owned by uid {status.st_uid}, not by you (uid "
                f"{os.geteuid()}); {_FIX}")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (f"{str(path)!r}: writable by group or others (mode "
                f"{stat.S_IMODE(status.st_mode):04o}); run chmod 700 {shlex.quote(str(path))} "
                f"or {_FIX}")
    return None


def kernel_dir() -> pathlib.Path:
    """Where kernel modules are written: ``$BTCORE_KERNEL_DIR``, else
    ``$NUMBA_CACHE_DIR/btcore_kernels``, else ``~/.cache/btcore/kernels``, else
    ``$TMPDIR/btcore-kernels-<uid>``: the first writable one that only the current
    user can write (created mode 0700). An explicit ``BTCORE_KERNEL_DIR`` that is
    not owned by the user, or is writable by group or others, is an error; a
    fallback that is, is skipped."""
    explicit = os.environ.get("BTCORE_KERNEL_DIR")
    if explicit:
        path = private_dir(explicit)  # raises, naming the directory and the fix
        if not os.access(path, os.W_OK | os.X_OK):
            raise OSError(f"BTCORE_KERNEL_DIR={explicit!r} is not writable; {_FIX}")
        return path
    refused = []
    for candidate in (os.environ.get("NUMBA_CACHE_DIR") and
                      os.path.join(os.environ["NUMBA_CACHE_DIR"], "btcore_kernels"),
                      os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                   os.path.join(os.path.expanduser("~"), ".cache"),
                                   "btcore", "kernels"),
                      os.path.join(tempfile.gettempdir(), f"btcore-kernels-{os.getuid()}")):
        if not candidate:
            continue
        try:
            path = private_dir(candidate)
        except UnsafeKernelDirError as err:
            refused.append(str(err).removeprefix("refusing "))
            continue
        except OSError:
            continue
        if os.access(path, os.W_OK | os.X_OK):
            return path
    if refused:
        raise UnsafeKernelDirError("no safe directory for btcore kernel modules; refused "
                                   + "; ".join(refused))
    raise OSError(f"no writable directory for btcore kernel modules; {_FIX}")


def numba_cache_dir(module_file: pathlib.Path) -> pathlib.Path:
    """The directory Numba caches a kernel module's functions in (its locators:
    ``$NUMBA_CACHE_DIR/<dir>_<sha1>`` when set, else ``__pycache__`` beside it)."""
    from numba.core import config
    from numba.core.caching import _CacheLocator
    if config.CACHE_DIR:
        return pathlib.Path(config.CACHE_DIR) / _CacheLocator.get_suitable_cache_subpath(
            str(module_file))
    return module_file.parent / "__pycache__"


def read_regular(path: pathlib.Path) -> str | None:
    """The text of ``path`` if it is a regular file (a symlink is never read)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return None
        try:
            return file.read().decode()
        except UnicodeDecodeError:
            return None


def write_private(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` (in a private directory) unless it already holds
    it: to a fresh ``mkstemp`` temporary beside it, renamed over ``path``, so a
    planted file or symlink is replaced, never followed, and readers never see a
    half-written file."""
    if read_regular(path) == text:
        return
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp",
                                             dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
