"""The files of a result store, handled safely.

The writer's lock (:class:`StoreLock`: ``flock``, ``msvcrt`` on Windows), the
ownership check of an ``out=`` directory, making and clearing it, and reading a
file only if it is a regular file reached through no symbolic link
(``O_NOFOLLOW``). Nothing here knows what the files hold.
"""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import shutil
import socket
import stat
import threading
import warnings
import weakref

#: the writer's lock file (pid, host and start of the run holding it)
LOCK = ".btcore.lock"

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a planted FIFO must not hang an open
#: where the Windows fallback (msvcrt) locks one byte, past the holder's details
_WINDOWS_LOCK_OFFSET = 1 << 20


class StoreBusyError(RuntimeError):
    """Another run (named in the message) is writing to this ``out=`` directory."""


class BadPart(ValueError):
    """A file of a store that must not be used: missing, a link, altered, corrupt."""


class StoreLock:
    """An exclusive, non-blocking lock on a store directory, held by one run.

    ``flock`` on :data:`LOCK` inside the directory (``msvcrt.locking`` on
    Windows): the kernel drops it when the process dies, however it dies. The
    file holds the holder's pid, host and start time for the refusal message;
    it is never deleted (deleting a lock file races with the next locker).
    Within one process, a lock still held by an earlier run of the same thread
    (one that ended with an exception whose traceback is still referenced)
    is taken over; another live thread's lock refuses like another process's.
    """

    _held = weakref.WeakValueDictionary()  # (st_dev, st_ino) of a directory -> lock
    _held_guard = threading.Lock()

    def __init__(self, path: pathlib.Path):
        self.path, self.fd = path / LOCK, None
        self.thread = threading.current_thread()

    @classmethod
    def acquire(cls, directory: pathlib.Path, out, workflow: str) -> "StoreLock":
        info = os.stat(directory)
        key = (info.st_dev, info.st_ino)
        with cls._held_guard:
            earlier = cls._held.get(key)
            if earlier is not None and earlier.fd is not None:
                if earlier.thread is threading.current_thread() or \
                        not earlier.thread.is_alive():
                    earlier.release()  # that run is over: it raised in this thread
                else:
                    raise StoreBusyError(_busy_message(out, earlier.details(), earlier.thread))
            lock = cls(directory)
            lock._take(out, workflow)
            cls._held[key] = lock
            return lock

    def _take(self, out, workflow: str) -> None:
        flags = os.O_RDWR | os.O_CREAT | NOFOLLOW | CLOEXEC | _NONBLOCK
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise ValueError(f"cannot open the lock file {self.path} ({exc}); if it is a "
                             "symbolic link or not a file, delete it, or choose another "
                             "out= directory") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError(f"the lock file {self.path} is not a regular file; delete "
                                 "it, or choose another out= directory")
            if not _try_lock(fd, self.path):
                raise StoreBusyError(_busy_message(out, _read_details(fd)))
            details = {"pid": os.getpid(), "host": socket.gethostname(),
                       "started": datetime.datetime.now().astimezone().isoformat(
                           timespec="seconds"),
                       "workflow": workflow, "thread": self.thread.name}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(details).encode())
        except BaseException:
            os.close(fd)  # closing drops a lock taken on it
            raise
        self.fd = fd

    def details(self) -> dict:
        return _read_details(self.fd) if self.fd is not None else {}

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no stale details for the next reader
        except OSError:
            pass
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def __del__(self):
        try:
            self.release()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def _try_lock(fd: int, path) -> bool:
    """Lock ``fd`` exclusively without waiting: True, or False when another holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as exc:
            raise ValueError(f"cannot lock {path} ({exc}): its file system does not support "
                             "locks; choose an out= directory on a local disk") from None
    try:  # pragma: no cover - Windows: a byte past the details, which others may read
        import msvcrt
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    except ImportError:  # pragma: no cover - neither: say so, once
        warnings.warn("this platform has no file locking: make sure only one run writes to "
                      f"{path.parent} at a time", RuntimeWarning, stacklevel=4)
        return True


def _unlock(fd: int) -> None:
    try:
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_UN)
    except ImportError:  # pragma: no cover - Windows
        try:
            import msvcrt
            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except (ImportError, OSError):
            pass


def _read_details(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        details = json.loads(os.read(fd, 4096) or b"{}")
        return details if isinstance(details, dict) else {}
    except (OSError, ValueError):
        return {}


def _busy_message(out, details: dict, thread=None) -> str:
    if thread is not None:
        who = f"another thread of this process (pid {os.getpid()}, thread {thread.name!r})"
    elif details.get("pid") is not None:
        who = f"process {details['pid']} on host {details.get('host', '?')}"
        if details.get("started"):
            who += f", started {details['started']}"
        if details.get("workflow"):
            who += f" ({details['workflow']})"
        if details.get("host") == socket.gethostname() and not _alive(details["pid"]):
            who += ("; that process has exited, but a process it started (a worker) "
                    "still holds the lock: stop it")
    else:
        who = "another process (its details are not written yet)"
    return (f"out={str(out)!r} is being written by another btcore run: {who}. Wait for it "
            "to finish, or stop it (its finished tasks are kept: the same call resumes "
            "them), or choose another out= directory; open_results() reads it meanwhile")


def _alive(pid) -> bool:
    if os.name != "posix":  # pragma: no cover - os.kill(pid, 0) terminates on Windows
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, OverflowError):
        return True
    return True


def _user(uid: int) -> str:
    try:
        import pwd
        return f"{pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def check_owned(path: pathlib.Path, out) -> None:
    """ValueError unless the existing directory ``path`` belongs to this user and
    only this user can write to it (anyone else could swap its parts, or plant
    links where btcore writes). Windows keeps permissions in ACLs: not checked."""
    if not hasattr(os, "geteuid"):  # pragma: no cover - Windows
        return
    uid = os.geteuid()
    link = os.lstat(path)
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in (uid, 0):
        raise ValueError(f"out={str(out)!r} is a symbolic link owned by {_user(link.st_uid)}, "
                         "who could point it elsewhere at any time; choose a directory "
                         "you own")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ValueError(f"out={str(out)!r} cannot be used ({exc.strerror}); choose another "
                         "out= directory") from None
    if info.st_uid != uid:
        raise ValueError(f"out={str(out)!r} is owned by {_user(info.st_uid)}, not by you "
                         f"({_user(uid)}): its owner could replace the results or plant "
                         "links in it. Choose a directory you own (e.g. a new one: btcore "
                         "creates it)")
    if info.st_mode & 0o022:
        mode = stat.S_IMODE(info.st_mode)
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002))
                           if mode & bit)
        raise ValueError(f"out={str(out)!r} is writable by {who} (mode {mode:04o}): they "
                         "could replace the results or plant links in it. Run "
                         f"`chmod go-w {_shell_quote(path)}` if only you should write "
                         "there, or choose a directory only you can write")


def _shell_quote(path) -> str:
    import shlex
    return shlex.quote(str(path))


def make_directory(path: pathlib.Path, out) -> None:
    """Create ``out`` (and its parents) writable by this user only, whatever the
    umask or inherited ACLs; an ``out`` someone else created meanwhile is checked."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
        else:
            os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) & ~0o022)
    except OSError as exc:
        raise ValueError(f"cannot create the out= directory {str(out)!r} ({exc}); choose "
                         "another") from None
    check_owned(path, out)


def _ignorable(name: str) -> bool:
    """The lock file and leftover temporaries do not make a directory btcore's."""
    return name == LOCK or (name.startswith(".") and name.endswith(".tmp"))


def has_content(path: pathlib.Path) -> bool:
    return any(not _ignorable(entry.name) for entry in os.scandir(path))


def clear_directory(path: pathlib.Path) -> None:
    """Delete everything in ``path`` but the lock (links themselves, never targets)."""
    for entry in os.scandir(path):
        if entry.name == LOCK:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def unlink(path: pathlib.Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def open_regular(path: pathlib.Path):
    """``path`` opened for reading if it is a regular file, never through a link."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise BadPart(f"{path} is missing") from None
    if stat.S_ISLNK(info.st_mode):
        try:
            target = f" (to {os.readlink(path)!r})"
        except OSError:
            target = ""
        raise BadPart(f"{path} is a symbolic link{target}; btcore never reads or writes "
                       "through one")
    if not stat.S_ISREG(info.st_mode):
        raise BadPart(f"{path} is not a regular file")
    try:
        descriptor = os.open(path, os.O_RDONLY | NOFOLLOW | CLOEXEC | _NONBLOCK)
    except OSError as exc:  # ELOOP: a link swapped in since the lstat
        raise BadPart(f"{path} cannot be opened safely ({exc.strerror})") from None
    file = os.fdopen(descriptor, "rb")
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        file.close()
        raise BadPart(f"{path} is not a regular file")
    return file


def read_regular(path: pathlib.Path) -> bytes:
    with open_regular(path) as file:
        return file.read()
