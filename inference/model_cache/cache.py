"""The per-process model cache: bounded by count and bytes, one load per version, aliases on a TTL.

What a reference stands for is read from MDS's database (``registry_mirror.selectors.served_version_number``),
never from MLflow: an alias from MDS's promotion record, ``latest`` as the newest version MDS serves, a number
only if MDS trained or adopted it.

An alias moved through MDS is served at once by the process that moved it (``aliases_forget``, on the move's
commit) and within ``check_interval`` seconds by every other: at most that often a request reads the newest move's
id (``registry_mirror.selectors.promotion_generation``, one indexed read) and, if it changed, the aliases known are
resolved again. A 1-row /predict pays this read once a second, not once per request.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection

from core.contract import VersionRef
from core.errors import ApplicationError, DatabaseUnavailable, NotFound
from core.faults import unavailable
from registry_mirror import gateway, selectors

from ..metrics import CACHE_EVICTIONS, CACHE_HITS, CACHE_LOAD_SECONDS, CACHE_LOADS
from .loading import load_version
from .versions import LoadedVersion

logger = logging.getLogger(__name__)


@dataclass
class _Resolved:
    version: int
    expires: float
    refreshing: bool = False


@dataclass
class _KeyLock:
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Threads holding or waiting for ``lock``; counted under the cache's lock.
    users: int = 0


class ModelCache:
    """Versions by ``(name, number)``, bounded by ``max_entries`` and ``max_bytes``; see the module docstring."""

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        alias_ttl: float,
        source=None,
        resolver: Callable[..., int] | None = None,
        check_interval: float = 1.0,
        generation: Callable[[], int] | None = None,
    ):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.alias_ttl = alias_ttl
        # Where the files come from (MLflow), and who says which versions are served (MDS's database), and when
        # that may have changed (no check: aliases live their TTL).
        self.source = source or gateway
        self.resolver = resolver or selectors.served_version_number
        self.generation = generation or (selectors.promotion_generation if resolver is None else None)
        self.check_interval = check_interval
        self._generation: int | None = None
        self._generation_due = 0.0
        self._generation_checking = False
        # Numbers found served, until when: a request for one asks the database at most once per TTL.
        self._served_numbers: dict[tuple[str, int], float] = {}
        self.loads = 0
        self._entries: OrderedDict[tuple[str, int], LoadedVersion] = OrderedDict()
        self._resolved: dict[tuple[str, VersionRef], _Resolved] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, _KeyLock] = {}

    def get(self, name: str, version: int) -> LoadedVersion:
        """The loaded version, loading it on first use (``NotFound`` if MLflow has no such version)."""
        key = (name, version)
        with self._lock:
            loaded = self._entries.get(key)
            if loaded is not None:
                self._entries.move_to_end(key)
            else:
                key_lock = self._key_lock_acquire(key)
        if loaded is not None:
            CACHE_HITS.labels(name, str(version)).inc()
            return loaded
        try:
            with key_lock.lock:
                with self._lock:
                    if key in self._entries:
                        return self._entries[key]
                started = time.monotonic()
                loaded = load_version(name=name, version=version, source=self.source)
                CACHE_LOAD_SECONDS.observe(time.monotonic() - started)
                CACHE_LOADS.labels(name, str(version)).inc()
                loaded.pickle.on_loaded = self.enforce_bounds
                # Before the entry is visible: a sklearn request that finds it then waits for this download.
                loaded.pickle.prefetch()
                with self._lock:
                    self.loads += 1
                    self._entries[key] = loaded
                self.enforce_bounds()
                return loaded
        finally:
            self._key_lock_release(key, key_lock)

    def resolve(self, name: str, reference: VersionRef) -> int:
        """The version number ``reference`` (a number, ``latest`` or an alias) stands for.

        Raises:
            NotFound: no such model, alias or version.
            Conflict: ``version_not_adopted``, a number MDS neither trained nor adopted.
        """
        if reference.number is not None:
            return self._served_number(name, reference.number)
        if reference.alias is not None:
            self._aliases_check()
        key = (name, reference)
        now = time.monotonic()
        with self._lock:
            known = self._resolved.get(key)
            if known is not None and (now < known.expires or known.refreshing):
                return known.version
            if known is not None:
                # Expired: keep serving the known version while one thread asks MLflow again.
                known.refreshing = True
                threading.Thread(target=self._refresh, args=(key,), daemon=True).start()
                return known.version
            key_lock = self._key_lock_acquire(key)
        try:
            with key_lock.lock:
                with self._lock:
                    known = self._resolved.get(key)
                    if known is not None:
                        return known.version
                version = self.resolver(name=name, reference=reference)
                with self._lock:
                    self._resolved[key] = _Resolved(version, time.monotonic() + self.alias_ttl)
                return version
        finally:
            self._key_lock_release(key, key_lock)

    def aliases_forget(self, *, name: str) -> None:
        """Forget what the aliases of ``name`` stand for: the next request for one reads MDS's record again."""
        with self._lock:
            for key in [key for key in self._resolved if key[0] == name and key[1].alias is not None]:
                del self._resolved[key]

    def _aliases_check(self) -> None:
        """Forget every alias known if an alias was moved since the last check (by any process), at most once per
        ``check_interval``; one request checks while the others go on with what they know."""
        if self.generation is None:
            return
        with self._lock:
            if self._generation_checking or time.monotonic() < self._generation_due:
                return
            self._generation_checking = True
        generation = None
        try:
            generation = self.generation()
        except Exception as exc:  # the database is down for a moment: the aliases known keep serving
            logger.warning("Could not check for moved aliases: %s", exc)
        finally:
            with self._lock:
                self._generation_checking = False
                self._generation_due = time.monotonic() + self.check_interval
                if generation is not None and generation != self._generation:
                    self._generation = generation
                    for key in [key for key in self._resolved if key[1].alias is not None]:
                        del self._resolved[key]

    def enforce_bounds(self) -> None:
        """Evict least recently used versions until both limits hold; the newest entry always stays."""
        evicted = []
        with self._lock:
            while len(self._entries) > 1 and (
                len(self._entries) > self.max_entries
                or sum(entry.nbytes for entry in self._entries.values()) > self.max_bytes
            ):
                evicted.append(self._entries.popitem(last=False)[1])
        for entry in evicted:
            logger.info("Evicted %s version %s from the model cache", entry.name, entry.version)
            CACHE_EVICTIONS.labels(entry.name, str(entry.version)).inc()
            entry.close()

    def known_version(self, name: str, reference: VersionRef) -> int | None:
        """The version ``reference`` stands for if this process has loaded or resolved it; never asks anyone."""
        with self._lock:
            if reference.number is not None:
                return reference.number if (name, reference.number) in self._entries else None
            known = self._resolved.get((name, reference))
            return known.version if known is not None else None

    def loaded(self) -> list[LoadedVersion]:
        with self._lock:
            return list(self._entries.values())

    def aliases(self) -> dict[str, int]:
        with self._lock:
            return {f"{name}/{reference}": known.version for (name, reference), known in self._resolved.items()}

    def clear(self) -> None:
        with self._lock:
            entries, self._entries = list(self._entries.values()), OrderedDict()
            self._resolved.clear()
            self._served_numbers.clear()
            self._generation, self._generation_due = None, 0.0
            self.loads = 0
        for entry in entries:
            entry.close()

    def _key_lock_acquire(self, key: tuple) -> _KeyLock:
        """The lock that serialises loads (or resolutions) of ``key``, counted as used; call under ``_lock``."""
        key_lock = self._key_locks.get(key)
        if key_lock is None:
            key_lock = self._key_locks[key] = _KeyLock()
        key_lock.users += 1
        return key_lock

    def _key_lock_release(self, key: tuple, key_lock: _KeyLock) -> None:
        # Dropped once no thread holds or waits for it, so unknown versions and aliases leave nothing behind;
        # a later request makes a new one, and by then the entry is in the cache or the load has failed.
        with self._lock:
            key_lock.users -= 1
            if key_lock.users == 0:
                del self._key_locks[key]

    def _served_number(self, name: str, number: int) -> int:
        key = (name, number)
        with self._lock:
            if time.monotonic() < self._served_numbers.get(key, 0.0):
                return number
            known = key in self._served_numbers
        try:
            # Not cached when refused: a version adopted meanwhile serves at once.
            number = self.resolver(name=name, reference=VersionRef(number=number))
        except Exception as exc:
            # The database is down for a moment: a version known to be served keeps serving, asked again after
            # the next TTL (as an alias is); one never checked gets the 503.
            if not known or not isinstance(unavailable(exc), DatabaseUnavailable):
                raise
            logger.warning("Could not re-check version %s of %s: %s", number, name, exc)
        with self._lock:
            self._served_numbers[key] = time.monotonic() + self.alias_ttl
        return number

    def _refresh(self, key: tuple[str, VersionRef]) -> None:
        name, reference = key
        version = None
        try:
            version = self.resolver(name=name, reference=reference)
        except NotFound:
            # The alias was removed (or the model deleted): forget it, so the next request asks again and gets
            # the 404 instead of a version nobody points at any more.
            with self._lock:
                self._resolved.pop(key, None)
            return
        except ApplicationError as exc:
            # The database is down: keep the known version, ask again after the next TTL.
            logger.warning("Could not re-resolve %s %s: %s", name, reference, exc.message)
        except Exception:
            logger.exception("Could not re-resolve %s %s", name, reference)
        finally:
            # This thread's own database connection: closed, or it would stay open until the process ends.
            connection.close()
            # Whatever happened, the alias is asked again after the next TTL: never left marked as refreshing.
            with self._lock:
                known = self._resolved.get(key)
                if known is not None:
                    known.version = known.version if version is None else version
                    known.expires = time.monotonic() + self.alias_ttl
                    known.refreshing = False
