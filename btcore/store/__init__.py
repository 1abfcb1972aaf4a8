"""Result stores: a sweep's rows, or a job's raw blocks, streamed to a directory.

With ``out=`` a :class:`ResultStore` writes every block to
``out/part-<task>.parquet`` as it arrives (a temporary file renamed into place,
so a killed process leaves whole parts or none) under a manifest keyed by
hashes of the strategy code, grid, data and settings. Re-running the same call
reads the finished parts and computes only the missing tasks; anything else is
refused unless ``overwrite=True``. :func:`open_results` reads a store lazily.

A store is safe to share a machine with: a writer holds an exclusive lock on
it for the whole run (a second writer is refused, naming the first), the
directory must belong to the user and be writable by nobody else, temporaries
are created with ``O_EXCL`` under unpredictable names and no part, manifest or
lock is ever opened through a symbolic link. The manifest records every part's
task and SHA-256 (of the bytes written); a resume recomputes a part that does
not match, :func:`open_results` refuses it and reads only the recorded parts.

Modules: ``files`` (the lock, ownership checks, link-safe file operations),
``manifest`` (fingerprints, manifest and journal, a part's bytes), ``writer``
(:class:`ResultStore`, :func:`stored_job`) and ``reader`` (:func:`open_results`).
"""
from btcore.store.files import StoreBusyError
from btcore.store.manifest import fingerprints
from btcore.store.reader import StoredResults, open_results
from btcore.store.writer import ResultStore, StoreIntegrityWarning, check_out, stored_job

__all__ = ["ResultStore", "StoredResults", "open_results", "StoreBusyError",
           "StoreIntegrityWarning", "check_out", "stored_job", "fingerprints"]
