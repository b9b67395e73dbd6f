"""One file's ingest work (read, parse, de-identify, encode, hash, store), in the
importing process or in a pool of forked worker processes ("facts only").

File bytes never cross a process boundary. The workers are forked once the list
of candidates is built, so each reads its share of the files from its own
(copy-on-write) copy of that list, by index, and stores them itself; what comes
back is small: what the index records about the header (plain values, not the
pydicom dataset), the identity mappings, the
quarantine verdict, the storage facts, or the reason a file was refused. The
parent does every database write, exactly as the serial path does.

Workers agree without talking to each other because de-identification is a
deterministic function of the project secret (HMAC-derived UIDs, pseudonyms and
date shifts); what an engine remembers between files (its replay memos, the UID
cache) is only a cache. Content-addressed writes are idempotent, and
`storage.put` settles two workers storing the same bytes at the same moment.

Workers never touch the database: the connections they inherit are the parent's
sockets, so a query from a worker raises instead of running on them (and nothing
closes them: a worker leaves through os._exit). Forking a process that runs
other threads is not safe (a lock held by one of them stays held in the child),
so a multi-threaded process (a threaded web server, the embedded demo that runs
jobs inside the web process) prepares its files serially.
"""

from __future__ import annotations

import functools
import itertools
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from annotation_server.imaging import storage
from annotation_server.imaging.deid import Deidentifier
from annotation_server.imaging.ingest import photos
from annotation_server.imaging.ingest.prepare import Prepared, prepare
from annotation_server.imaging.ingest.sources import Candidate

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h

# A pool is worth its start (a fork per worker) from this many files per worker.
MIN_FILES_PER_WORKER = 2
# Files a worker takes at a time: fewer, larger messages; small enough to share
# the tail of a batch evenly and to report progress smoothly.
MAX_CHUNK = 8


@dataclass
class Stored:
    """One file after its work: the prepared file (its encoded bytes dropped once
    stored; from a worker, its index facts without the pydicom header) and where
    it was stored; `created` is False when the content was already there."""

    prepared: Prepared
    sha256: str = ""
    key: str = ""
    created: bool = False
    size: int = 0


def prepare_candidate(deid: Deidentifier, candidate: Candidate) -> Prepared:
    """Read and prepare one file; every failure becomes a rejection with its reason."""
    try:
        data = candidate.read()
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        name = candidate.label if candidate.photo_row is not None else candidate.name
        return Prepared(name, reason=f"could not read the file ({exc})")
    try:
        return photos.prepare_file(deid, candidate, data, dicom=prepare)
    except Exception as exc:  # a reader's bug must not cost the batch
        name = candidate.label if candidate.photo_row is not None else candidate.name
        logger.exception("preparing %s failed", name)
        return Prepared(name, reason=f"could not process: {exc}")


def store(prepared: Prepared, *, verify: bool = False) -> Stored:
    """Store a prepared file (rejected ones are passed through untouched)."""
    if prepared.rejected:
        return Stored(prepared)
    data, prepared.data = prepared.data, b""
    try:
        digest, key, created = storage.put(data, verify=verify)
    except Exception as exc:  # full disk, unreachable object store...
        logger.exception("storing %s failed", prepared.name)
        return Stored(Prepared(prepared.name, reason=f"could not store the file ({exc})"))
    return Stored(prepared, digest, key, created, len(data))


def handle(deid: Deidentifier, candidate: Candidate, *, verify: bool = False) -> Stored:
    return store(prepare_candidate(deid, candidate), verify=verify)


# -- the pool -----------------------------------------------------------------------------


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configured_workers() -> int:
    """REFSET_INGEST_WORKERS: worker processes per import (0 or unset: one per CPU
    this process may use; 1: prepare every file in the importing process)."""
    from django.conf import settings

    wanted = int(getattr(settings, "REFSET_INGEST_WORKERS", 0) or 0)
    return wanted if wanted > 0 else cpu_count()


def usable_workers(wanted: int, files: int) -> tuple[int, str]:
    """How many workers an import of `files` files gets, and why not more."""
    workers = min(wanted, files // MIN_FILES_PER_WORKER)
    if workers < 2:
        return 1, "serial: few files or one worker configured"
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1, "serial: this platform cannot fork"
    if _other_threads():
        return 1, "serial: this process runs other threads (forking it is not safe)"
    from django.core.files.storage import InMemoryStorage, storages

    if isinstance(storages["default"], InMemoryStorage):
        return 1, "serial: in-memory storage is not shared with worker processes"
    return workers, f"{workers} worker processes"


def _other_threads() -> bool:
    """Threads besides this one that a fork could leave holding a lock the workers
    need. Threads marked `fork_tolerant` (the job lease heartbeat and recovery loop,
    jobs.services) only sleep and query on their own database connection, which the
    workers never touch."""
    me = threading.current_thread()
    return any(
        t is not me and not getattr(t, "fork_tolerant", False) for t in threading.enumerate()
    )


# What each pool's workers work on, by job number: set before the fork, so every
# worker inherits it; read only by index afterwards.
_JOBS: dict[int, tuple[Deidentifier, list[Candidate]]] = {}
_job_numbers = itertools.count(1)


def _no_queries(execute, sql, params, many, context):
    raise RuntimeError("ingest workers do not touch the database: the importing process does")


def _end_if_orphaned(parent: int, signum, frame) -> None:
    if os.getppid() != parent:
        os._exit(1)


def _worker_start(parent: int) -> None:
    """First thing in each worker: its own storage client (a forked one would share
    the parent's sockets), no database, Ctrl-C left to the parent, which lets each
    worker finish the file in hand (a killed write leaves half a file), and an end
    when the parent ends (a Celery pool process may be killed without cleaning up)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The fork inherits the parent's SIGTERM handler (a Celery worker's warm
    # shutdown), which would swallow the parent-death signal below and leave the
    # worker waiting forever on the parent's database and broker sockets. A SIGTERM
    # while the parent lives is the parent's to act on (a stop sent to the whole group).
    signal.signal(signal.SIGTERM, functools.partial(_end_if_orphaned, parent))
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it ended before prctl
            os._exit(0)
    from django.core.files.storage import default_storage, storages
    from django.db import connections
    from django.utils.functional import empty

    storages._storages = {}
    default_storage._wrapped = empty
    for connection in connections.all():
        connection.execute_wrappers.append(_no_queries)


def _work(job: int, start: int, stop: int) -> list[bytes]:
    """Handle candidates[start:stop] of `job`; each result pickled on its own, so
    one that cannot be sent back costs only its own file. The pydicom header stays
    here: its index facts (plain values) travel instead, a tenth of the cost to
    pickle and to load again."""
    deid, candidates = _JOBS[job]
    out = []
    for candidate in candidates[start:stop]:
        result = handle(deid, candidate)
        result.prepared.header = None
        try:
            out.append(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:
            logger.exception("sending back the result of %s failed", candidate.name)
            result.prepared = Prepared(candidate.name, reason=f"could not process: {exc}")
            out.append(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return out


def _received(blob: bytes) -> Stored:
    return pickle.loads(blob)


class Pool:
    """Workers forked for one import; results in the order of the candidates."""

    def __init__(self, deid: Deidentifier, candidates: list[Candidate], workers: int):
        self.deid = deid
        self.candidates = candidates
        self.job = next(_job_numbers)
        size = max(1, min(MAX_CHUNK, len(candidates) // (workers * 4)))
        self.chunks = [(i, min(i + size, len(candidates))) for i in range(0, len(candidates), size)]
        _JOBS[self.job] = (deid, candidates)
        self.executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_worker_start,
            initargs=(os.getpid(),),
        )
        # The first submit forks every worker (before the executor starts its thread).
        # A Celery pool process is "daemonic", and multiprocessing refuses children to
        # those, lest they outlive it; ours are joined before the import returns and
        # end with it if it is killed (PR_SET_PDEATHSIG), so the rule is lifted here.
        config = multiprocessing.current_process()._config
        daemon = config.pop("daemon", None)
        try:
            self.futures: list[Future] = [
                self.executor.submit(_work, self.job, start, stop) for start, stop in self.chunks
            ]
        finally:
            if daemon is not None:
                config["daemon"] = daemon
        self.collected = 0  # chunks taken from the workers
        self.pending: list[Stored] = []  # of the chunk being handed out

    def results(self) -> Iterator[Stored]:
        for (start, stop), future in zip(self.chunks, self.futures, strict=True):
            try:
                blobs = future.result()
            except Exception as exc:  # a worker died (killed for memory...): redo here
                logger.warning(
                    "ingest worker failed on files %d-%d (%s: %s); preparing them here",
                    start,
                    stop - 1,
                    type(exc).__name__,
                    exc,
                )
                blobs = None
            self.collected += 1
            if blobs is None:
                for candidate in self.candidates[start:stop]:
                    # Another worker may have been stopped mid-write: verify sizes.
                    yield handle(self.deid, candidate, verify=True)
                continue
            self.pending = [_received(blob) for blob in blobs]
            self.pending.reverse()
            while self.pending:
                yield self.pending.pop()

    def close(self, *, abandon: bool = False) -> list[Stored]:
        """Wait for the workers to end (each finishes the file in hand; none is
        killed mid-write). `abandon`: the import failed; files not yet handled are
        skipped, and what was stored but never collected is returned, so the
        caller can remove it."""
        try:
            self.executor.shutdown(wait=True, cancel_futures=abandon)
        finally:
            _JOBS.pop(self.job, None)
        left: list[Stored] = list(self.pending)
        if abandon:
            for future in self.futures[self.collected :]:
                if future.cancelled() or future.exception() is not None:
                    continue
                left.extend(_received(blob) for blob in future.result())
        return left
