"""Which files of a partition are proven disjoint on event_id: the manifest readers trust so
that they de-duplicate only files that may hold copies.

    _eventlake/disjoint/dt=<dt>.json    {"files": [{name, size, modified, identity}, ...],
                                         "refused": [{..., reason, against}, ...],
                                         "ids": <key of the digest of the files' ids>, ...}
    _eventlake/disjoint/dt=<dt>/<run>.ids.parquet    the digest (`disjointids`)

Every file a manifest names (by `file_identity`: name, size and modification time, the very
file and not another written under its name) holds each of its event_ids once, and no two of
them share one. Writers do not pay for this: `verify`, run by the sweep after its writes (it
holds the lease and reads ids anyway), reads the event_id column of a partition's files and
records the verdict by compare-and-swap; readers (query/views.py) read named files bare.
Compaction runs it too, on each partition it rewrote (after its inputs are gone) and on each it
looks at for copies, so an old day nobody sweeps is verified by the next compaction.

    verify(dt)   a lone file: done, unless no writer of eventlake named it (a planted file
                 may hold an id twice: it is examined as a candidate, once)
                 L = listed files, M = manifest entries still listed (same identity),
                 C = L - M - the refused whose refusal still holds
                 nothing in C: done (one listing and one small read)
                 the ids of M: from the manifest's digest (one read) when it names exactly
                 the manifest's files, else by reading the event_id column of each of M
                 read the event_id column of C, each footer checked against the lake's whole
                 schema (`check_foreign`'s rule; readers do not check a file M names), a
                 file failing it refused; ids seen once over M and C cannot clash, so
                 only the others ("contested") are compared: candidates are taken in name
                 order, each accepted when its ids are unique and none of its contested ids
                 is in M or in a candidate accepted before it
                 write a new digest (ids of M + accepted), then CAS-write M + accepted, the
                 refused (so they are not read again while they stay; entries whose files
                 are gone dropped) and the digest's key; on a conflict delete that digest,
                 read the manifest again and decide again; on success delete the old digest

A refused candidate (a hand-planted copy, a partial re-delivery racing the sweep, a file with
an id twice) stays out: readers de-duplicate it against the rest until compaction merges it.
A refusal records what it rests on (`against`: the verified files it shares an id with), and
holds while each of those is still verified: a compacted output seen next to its inputs is
refused, then examined again once the inputs are gone (and accepted). A file at fault itself
(an id twice, unreadable) is refused for as long as it stays; a hand-planted copy is refused
again against whatever then holds its events.
Any version of a manifest is a true statement about the files it names, whenever it is read:
entries are only added after their ids were checked against every entry kept, and a file is
named by its identity, so a reader matching the manifest against its own listing is never
misled by compaction, a rewrite or a file planted under a verified name. The limit: a file
replaced under its name keeping its size and modification time (to the second on S3) is the
same file to readers and to verify, which checks new files against the digest's ids, not the
files' own: its new rows are trusted, and a later file holding them can be accepted beside it.
A foreign file so replaced by one lacking a column is still refused by name on local disk
(views.install checks every foreign footer there); on S3, where it needs an overwrite in the
same second, its footer is not fetched again and the column would read as NULL rows.
eventlake's writers name a file after the ids it holds; a hand edit must not do this.

What is left unverified stays correct, only slower: partitions nobody verifies (a late event's
old day written by the stream after the sweep looked) are de-duplicated whole until the next
compaction or verify of that day.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from eventlake.config import VERSION
from eventlake.events.times import as_utc
from eventlake.lake.compactrecord import file_identity
from eventlake.lake.layout import check_dt
from eventlake.lake.names import is_own_file
from eventlake.lake.store import (
    Lake,
    LakeFile,
    LakeFileError,
    StateConflictError,
    WrittenFile,
)
from eventlake.lake.vanish import file_vanished
from eventlake.logs import lazy_logger

if TYPE_CHECKING:
    import pyarrow as pa

    from eventlake.lake.disjointids import KnownIds

# The id digests (`disjointids`) are verify's: a reader imports that module only when a
# manifest names one, not at `eventlake sql`'s start-up on a lake without (a compacted one).

__all__ = ["MANIFEST_PREFIX", "IdCache", "Manifest", "Refusal", "VerifyReport", "all_verified",
           "manifest_key", "read_manifest", "verified_files", "verify", "verify_logged",
           "verify_recent"]

_log = lazy_logger("eventlake.lake.disjoint")

T = TypeVar("T")
R = TypeVar("R")

MANIFEST_PREFIX = "disjoint"
"""Manifests live at `_eventlake/disjoint/dt=<dt>.json`."""
CAS_ATTEMPTS = 5
"""Times `verify` re-reads a partition's manifest after losing a compare-and-swap."""
_SCHEMA_CHECKED = "schema_checked"
"""Set in the manifests of releases whose verify checks each file's footer against the lake's
whole schema. An older one checked only `event_id`: the files it names that no eventlake writer
named are not trusted (readers check their footers and de-duplicate them; verify examines them
again, its digest unused as it names them)."""


def manifest_key(dt: str) -> str:
    """The lake state key of partition `dt`'s manifest."""
    return f"{MANIFEST_PREFIX}/dt={check_dt(dt)}.json"


def _is_digest_key(dt: str, key: str) -> bool:
    """`disjointids.is_digest_key`: that module is imported once a manifest names a digest."""
    from eventlake.lake.disjointids import is_digest_key

    return is_digest_key(dt, key)


@dataclass(frozen=True)
class Refusal:
    """Why a file was left out of its partition's manifest, and what that rests on."""

    reason: str
    against: frozenset[str] | None = None
    """The verified files (by `file_identity`) it shares an event_id with: the refusal holds
    while every one of them is still verified. Empty: the file is at fault itself (an id
    twice, unreadable), so it holds while the file stays. None: not recorded (a manifest of an
    older release): the file is examined again."""


@dataclass(frozen=True)
class Manifest:
    """A partition's files proven pairwise disjoint on event_id, and those refused (so a
    hand-planted copy is not read again by every verify), by `file_identity`."""

    dt: str
    files: frozenset[str]
    refused: frozenset[str] = frozenset()
    version: str | None = None
    """The state version it was read at (None: there is none yet)."""
    refusals: Mapping[str, Refusal] = field(default_factory=dict, hash=False)
    """Each of `refused`, with why."""
    digest: str | None = None
    """The state key of the digest of its files' ids (`disjointids`), if it names one of this
    partition (`is_digest_key`)."""


class IdCache:
    """event_id columns already read, by file (its path and `file_identity`: the very file):
    `verify` reads only the files not here, and adds what it reads. Compaction passes one
    holding what it read already (the files it keeps), so they are not read twice."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], pa.Array | LakeFileError] = {}
        self._whole: set[tuple[str, str]] = set()

    def get(self, f: LakeFile) -> pa.Array | LakeFileError | None:
        return self._ids.get((f.path, file_identity(f)))

    def put(self, f: LakeFile, ids: pa.Array | LakeFileError, *,
            whole_schema: bool = False) -> None:
        """`whole_schema`: read with `Lake.read_file(..., whole_schema=True)`."""
        key = (f.path, file_identity(f))
        self._ids[key] = ids
        if whole_schema:
            self._whole.add(key)
        else:
            self._whole.discard(key)

    def trusted(self, f: LakeFile) -> bool:
        """Whether `verify` may take `f` from here: its ids are here, and its footer was
        checked against the lake's whole schema or an eventlake writer named it (those write
        the lake's schema). A file another tool wrote, read for a few columns only (as
        compaction reads the files it keeps), is read again: readers trust the manifest
        instead of checking its footer (`Lake.check_foreign`)."""
        key = (f.path, file_identity(f))
        return key in self._ids and (key in self._whole or is_own_file(_name(f)))


def _manifest_json(dt: str, files: Sequence[LakeFile], refused: Mapping[LakeFile, Refusal],
                   *, now: datetime, digest: str | None) -> bytes:
    def entry(f: LakeFile) -> dict[str, Any]:
        return {"name": f.path.rpartition("/")[2], "size": f.size,
                "modified": as_utc(f.modified).isoformat() if f.modified else None,
                "identity": file_identity(f)}

    # A run token makes the content unique to this writer, so `swap_state` can tell a retried
    # PUT that landed from a racer's write.
    return json.dumps({
        "dt": dt, "verified_at": now.isoformat(), "run": secrets.token_hex(8),
        "eventlake_version": VERSION, "ids": digest, _SCHEMA_CHECKED: True,
        "files": [entry(f) for f in sorted(files, key=lambda f: f.path)],
        "refused": [{**entry(f), "reason": r.reason,
                     "against": None if r.against is None else sorted(r.against)}
                    for f, r in sorted(refused.items(), key=lambda p: p[0].path)]},
        indent=1).encode()


def read_manifest(lake: Lake, dt: str) -> Manifest:
    """Partition `dt`'s manifest (an empty one when there is none). An unreadable one is
    logged and treated as empty: it only ever makes readers de-duplicate more."""
    found = lake.read_state(manifest_key(dt))
    if found is None:
        return Manifest(dt, frozenset())
    refusals: dict[str, Refusal] = {}
    digest: str | None = None
    try:
        data = json.loads(found.data)
        files = frozenset(str(entry["identity"]) for entry in data["files"]
                          if data.get(_SCHEMA_CHECKED) is True or is_own_file(entry["name"]))
        if isinstance(data.get("ids"), str) and _is_digest_key(dt, data["ids"]) \
                and len(files) == len(data["files"]):
            digest = data["ids"]  # anything else: no digest (verify reads the files, and
            # never deletes what a hand-edited `ids` names: lake state, another day's digest)
        for entry in data.get("refused", []):
            against = entry.get("against")
            if against is not None and not (isinstance(against, list)
                                            and all(isinstance(a, str) for a in against)):
                raise TypeError(f"`against` of refused `{entry['identity']}` is not a list "
                                "of file identities")
            refusals[str(entry["identity"])] = Refusal(
                str(entry.get("reason", "")), None if against is None else frozenset(against))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        _log.warning("ignoring the unreadable disjoint-files manifest of dt=%s (every file of "
                     "the partition is de-duplicated until it is rewritten): %s", dt, exc)
        files, refusals, digest = frozenset(), {}, None
    return Manifest(dt, files, frozenset(refusals), found.version, refusals, digest)


def verified_files(lake: Lake, files: Iterable[LakeFile]) -> frozenset[str]:
    """The paths among `files` (a listing) that their partition's manifest names: pairwise
    disjoint on event_id, each id once. Only partitions with several listed files, or a lone
    file no eventlake writer named (a planted file may hold an id twice until verified), are
    looked up (one small state read each; in parallel on S3): a lone file of eventlake's
    writers is read bare anyway."""
    by_dt: dict[str, list[LakeFile]] = defaultdict(list)
    for f in files:
        by_dt[f.dt].append(f)
    asked = sorted(dt for dt, group in by_dt.items()
                   if len(group) > 1 or not is_own_file(_name(group[0])))
    manifests = _each(lake, lambda dt: read_manifest(lake, dt), asked)
    return frozenset(f.path for m in manifests for f in by_dt[m.dt]
                     if file_identity(f) in m.files)


# -- verifying -----------------------------------------------------------------------------

@dataclass
class VerifyReport:
    """What one `verify` did, by partition (file base names)."""

    accepted: dict[str, list[str]] = field(default_factory=dict)
    """Files newly recorded as disjoint, by dt."""
    refused: dict[str, dict[str, str]] = field(default_factory=dict)
    """Files left out, by dt, with why (they stay de-duplicated on read)."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Manifest entries dropped because their files are gone, by dt."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Partitions not verified this time, with why (a file vanished: compaction at work;
    the manifest kept changing under us). Readers are unaffected: the next run tries again."""

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "refused": self.refused, "dropped": self.dropped,
                "skipped": self.skipped}

    def add(self, other: VerifyReport) -> None:
        """Take in `other`'s partitions (a later verify's word on a partition wins)."""
        self.accepted.update(other.accepted)
        self.refused.update(other.refused)
        self.dropped.update(other.dropped)
        self.skipped.update(other.skipped)


def verify(lake: Lake, dts: Iterable[str], *, now: datetime | None = None,
           ids: IdCache | None = None) -> VerifyReport:
    """Record which files of partitions `dts` are disjoint on event_id (the module docstring
    says how). Partitions with fewer than two files are left alone (they are read bare).
    Safe to run concurrently with itself, writers and compaction; never deletes or rewrites
    an event file. Raises what listing or state IO raises; a file that cannot be read is
    refused by name (LakeFileError) and the rest of its partition verified. `ids`: event_id
    columns read already (filled with what this call reads)."""
    wanted = sorted({check_dt(dt) for dt in dts})
    report = VerifyReport()
    if not wanted:
        return report
    now = as_utc(now or datetime.now(UTC))
    cache = IdCache() if ids is None else ids
    for dt in wanted:
        _verify_partition(lake, dt, now, report, cache)
    if report.accepted or report.refused or report.skipped:
        _log.info("verified disjoint files: %s", report.to_dict())
    return report


def verify_logged(lake: Lake, dts: Iterable[str], *, now: datetime, ids: IdCache | None = None,
                  caller: str = "") -> VerifyReport:
    """`verify`, logging and returning a failure instead of raising it (in `skipped`): for
    callers whose own work is done by now (the sweep's archiving, compaction's rewrite), since
    readers are correct without the manifest, only slower."""
    dts = sorted(set(dts))
    try:
        return verify(lake, dts, now=now, ids=ids)
    except Exception as exc:  # an optimisation failing must not fail the caller's work
        _log.warning("could not verify disjoint files of dt %s%s (readers de-duplicate them "
                     "meanwhile; the next sweep or compaction tries again): %s: %s",
                     ", ".join(dts), f" after {caller}" if caller else "",
                     type(exc).__name__, exc)
        return VerifyReport(skipped={dt: f"{type(exc).__name__}: {exc}" for dt in dts})


def verify_recent(lake: Lake, written: Iterable[WrittenFile], now: datetime) -> VerifyReport:
    """The sweep's call after its writes: verify the partitions it wrote to, and today's and
    yesterday's (UTC, by `now`), where the stream path writes nearly all its files. Cheap when
    nothing is new (a listing and a small read per partition). Logs and returns a failure
    instead of raising it (`verify_logged`)."""
    today = as_utc(now).date()
    dts = {f.dt for f in written} | {today.isoformat(), (today - timedelta(days=1)).isoformat()}
    return verify_logged(lake, dts, now=now, caller="the sweep")


def all_verified(lake: Lake, dt: str, files: Iterable[LakeFile]) -> bool:
    """Whether partition `dt`'s manifest names every one of `files` (one small state read):
    they are pairwise disjoint on event_id, each id once."""
    return {file_identity(f) for f in files} <= read_manifest(lake, dt).files


def _verify_partition(lake: Lake, dt: str, now: datetime, report: VerifyReport,
                      ids: IdCache) -> None:
    from eventlake.lake.disjointids import KnownIds, delete_digest, delete_orphans, write_digest

    for _ in range(CAS_ATTEMPTS):
        # The manifest first, then the listing: every file the manifest names was written
        # before it, so the listing has it unless it is gone (a listing taken earlier could
        # miss a file a racer recorded, and checking against fewer files is not a check).
        manifest = read_manifest(lake, dt)
        listed = lake.list_files(dts=[dt])
        if len(listed) < 2 and all(is_own_file(_name(f)) for f in listed):
            return  # eventlake's writers write each id once; a planted file may not
        kept = [f for f in listed if file_identity(f) in manifest.files]
        kept_ids = {file_identity(f) for f in kept}
        still_refused: dict[LakeFile, Refusal] = {}
        candidates: list[LakeFile] = []
        for f in listed:
            identity = file_identity(f)
            refusal = manifest.refusals.get(identity)
            if identity in kept_ids:
                continue
            if refusal is not None and refusal.against is not None \
                    and refusal.against <= kept_ids:
                still_refused[f] = refusal  # what it clashed with is still verified
            else:
                candidates.append(f)  # new, or its refusal no longer holds: examine it
        candidates.sort(key=lambda f: f.path)
        dropped = len(manifest.files - kept_ids)
        listed_ids = {file_identity(f) for f in listed}
        gone_refused = len(manifest.refused - listed_ids)
        if not candidates and not dropped and not gone_refused:
            return
        accepted: list[LakeFile] = []
        refused: dict[LakeFile, Refusal] = {}
        digest = manifest.digest  # the same files: the same digest
        if candidates or dropped:
            known = _known_ids(lake, dt, manifest, kept)
            # read from the manifest's digest, which names exactly the files kept
            same_files = known is not None and manifest.digest is not None and not dropped
            if candidates:
                try:
                    wanted = candidates if known is not None else kept + candidates
                    _read_ids(lake, [f for f in wanted if not ids.trusted(f)], ids)
                    if known is None and any(isinstance(ids.get(f), LakeFileError)
                                             for f in kept):
                        # a verified file unreadable now (replaced keeping size and time?):
                        # start over
                        _read_ids(lake, [f for f in listed if not ids.trusted(f)], ids)
                        kept, still_refused = [], {}
                        candidates = sorted(listed, key=lambda f: f.path)
                except OSError as exc:
                    if not file_vanished(exc):
                        raise
                    report.skipped[dt] = f"a file vanished while its ids were read ({exc})"
                    return
                if known is None:
                    known = KnownIds.of([(file_identity(f), _array(ids, f)) for f in kept])
                accepted, refused = _choose(known, candidates, ids)
                known = known.plus([(file_identity(f), _array(ids, f)) for f in accepted])
            if same_files and not accepted:  # only refusals: the digest is still true
                digest = manifest.digest
            else:
                digest = None if known is None else write_digest(lake, dt, known)
        data = _manifest_json(dt, kept + accepted, {**still_refused, **refused}, now=now,
                              digest=digest)
        try:
            lake.swap_state(manifest_key(dt), data, expected=manifest.version)
        except StateConflictError:
            if digest is not None and digest != manifest.digest:
                delete_digest(lake, digest)  # nobody names it
            continue  # another verify wrote meanwhile: build on what it recorded
        if manifest.digest is not None and manifest.digest != digest:
            delete_digest(lake, manifest.digest)  # a verify that read it loses its swap anyway
        if digest is not None and digest != manifest.digest:
            delete_orphans(lake, dt, digest, now=now)  # those crashes and failures left
        if accepted:
            report.accepted[dt] = [_name(f) for f in accepted]
        if refused:
            report.refused[dt] = {_name(f): r.reason for f, r in refused.items()}
            _log.info("dt=%s: %d file(s) may hold copies of other files' events and stay "
                      "de-duplicated on read: %s", dt, len(refused), report.refused[dt])
        if dropped:
            report.dropped[dt] = dropped
        return
    report.skipped[dt] = f"its manifest changed {CAS_ATTEMPTS} times while it was verified"


def _name(f: LakeFile) -> str:
    return f.path.rpartition("/")[2]


def _read_ids(lake: Lake, files: list[LakeFile], into: IdCache) -> None:
    """The event_id column of each of `files`, or the LakeFileError that names it. Each
    footer is checked against the lake's whole schema (it is opened anyway): a file the
    manifest names is one readers may read by the lake's schema without opening it."""

    def read(f: LakeFile) -> pa.Array | LakeFileError:
        try:
            table = lake.read_file(f.path, ["event_id"], whole_schema=True)
        except LakeFileError as exc:
            return exc
        return table["event_id"].combine_chunks()

    for f, got in zip(files, _each(lake, read, files), strict=True):
        into.put(f, got, whole_schema=True)


def _each(lake: Lake, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`fn` of each item, in order; in parallel on S3 (each call is a request)."""
    if not lake.is_s3 or len(items) < 2:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor  # S3 only: not at start-up

    with ThreadPoolExecutor(min(16, len(items))) as pool:
        return list(pool.map(fn, items))


def _known_ids(lake: Lake, dt: str, manifest: Manifest, kept: list[LakeFile]
               ) -> KnownIds | None:
    """The ids of the `kept` files from the manifest's digest; None when it has no usable one
    (the caller reads the files)."""
    from eventlake.lake.disjointids import KnownIds, read_digest

    if not kept:
        return KnownIds.of([])
    if manifest.digest is None:
        return None
    known = read_digest(lake, dt, manifest.digest, manifest.files)
    return None if known is None else known.only(file_identity(f) for f in kept)


def _array(ids: IdCache, f: LakeFile) -> pa.Array:
    got = ids.get(f)
    assert got is not None and not isinstance(got, LakeFileError), f"ids of {f.path} not read"
    return got


def _choose(known: KnownIds, candidates: list[LakeFile], ids: IdCache
            ) -> tuple[list[LakeFile], dict[LakeFile, Refusal]]:
    """(candidates accepted, in order; {refused file: why}), against the `known` ids of the
    verified files kept. Only ids seen more than once over both ("contested") are compared."""
    import pyarrow as pa
    import pyarrow.compute as pc

    got_ids = {f: ids.get(f) for f in candidates}
    arrays = [a for a in got_ids.values() if isinstance(a, pa.Array)]
    new_ids = pa.concat_arrays(arrays) if arrays else pa.array([], pa.string())
    counts = pc.value_counts(new_ids)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    # Known ids are unique: one of them is contested only when a candidate holds it too
    in_known = pc.is_in(known.ids, value_set=new_ids)
    contested_ids = pa.concat_arrays([repeated, known.ids.filter(in_known)])
    taken: dict[str, str] = {  # contested event_id -> identity of the verified file holding it
        i: known.files[o] for i, o in zip(known.ids.filter(in_known).to_pylist(),
                                          known.owners.filter(in_known).to_pylist(),
                                          strict=True)}
    accepted: list[LakeFile] = []
    refused: dict[LakeFile, Refusal] = {}
    for f in candidates:
        got = got_ids[f]
        if got is None or isinstance(got, LakeFileError):
            problem = got.problem if got is not None else "its ids were not read"
            refused[f] = Refusal(f"unreadable: {problem}", frozenset())
            continue
        mine = _contested(got, contested_ids)
        if len(set(mine)) < len(mine):
            refused[f] = Refusal(f"holds event_id `{_first_repeat(mine)}` more than once",
                                 frozenset())
            continue
        clash = sorted(set(mine) & taken.keys())
        if clash:
            refused[f] = Refusal(f"shares {len(clash)} event_id(s) with verified files, e.g. "
                                 f"`{clash[0]}`", frozenset(taken[i] for i in clash))
            continue
        taken.update(dict.fromkeys(mine, file_identity(f)))
        accepted.append(f)
    return accepted, refused


def _contested(got: pa.Array, contested_ids: pa.Array) -> list[str]:
    """The ids of `got` seen more than once over the partition (all occurrences)."""
    import pyarrow.compute as pc

    if not len(contested_ids):  # the common case: nothing to compare
        return []
    values: list[str] = got.filter(pc.is_in(got, value_set=contested_ids)).to_pylist()
    return values


def _first_repeat(values: list[str]) -> str:
    """The smallest value `values` holds more than once (the caller saw one)."""
    return min(value for value, n in Counter(values).items() if n > 1)
