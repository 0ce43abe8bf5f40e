"""A remote artifact root: ``s3://bucket/prefix`` on AWS or any S3-compatible store, through fsspec.

The layout is the local one (DESIGN §5) under the URL. What differs is how the promises
are kept without a shared file system:

- an attempt is claimed by a create-only write of ``attempt-<n>/.claim`` (S3 conditional
  write, ``If-None-Match: *``); a taken number moves on to the next, so concurrent attempts
  never share a prefix;
- the stage works in a local mirror under the cache directory; every write to the store is
  retried under ``nbops.retry.ARTIFACT_STORE`` (5 attempts, waits 1, 2, 4, 8 s; the S3
  client's own retries are off so the bound is ours), and a write that still fails is an
  InfraError (exit 3); reads are retried the same way;
- the manifest is uploaded last, only after every file it lists is in the store;
- readers take only attempts with a manifest, download what it lists and check each file's
  sha256 before a stage sees it, then copy the manifest itself, last, into the mirror.

This module knows nothing of the local store, nor of what chooses between them.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from nbops.errors import InfraError, InputError
from nbops.retry import ARTIFACT_STORE
from nbops.storage import layout
from nbops.storage.atomic import replacing, write_atomic
from nbops.storage.base import Attempt, Store, sha256_matches_name
from nbops.storage.manifest import Manifest, file_sha256, list_files, parse_manifest
from nbops.storage.start import START

T = TypeVar("T")

CLAIM = ".claim"
_ATTEMPT = re.compile(r"^attempt-(\d+)$")
# Failures that retrying cannot mend: the object is missing, taken, or access is denied.
_PERMANENT = (FileNotFoundError, FileExistsError, PermissionError)
# Schemes whose create-only write is atomic (S3 conditional writes); elsewhere fsspec checks
# and then writes, and two attempts could share a number.
SCHEMES = ("s3", "s3a")


class RemoteStore(Store):
    """An fsspec URL mirrored under ``cache``."""

    def __init__(self, url: str, cache: Path) -> None:
        import fsspec

        self.url = url.rstrip("/")
        protocol = self.url.split("://", 1)[0]
        if protocol not in SCHEMES:
            raise InputError(
                f"{layout.ENV_ARTIFACT_ROOT}={url}: remote artifact roots must be s3:// (any S3-compatible store; "
                "attempts are claimed with S3 conditional writes), or use a local or mounted path."
            )
        # One layer of retries, ours (bounded, with backoff): the S3 client's own are turned off.
        options: dict[str, Any] = {"config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 1}}}
        try:
            self.fs, self.base = fsspec.core.url_to_fs(self.url, skip_instance_cache=True, **options)
        except (ImportError, ValueError) as exc:
            raise InputError(
                f"{layout.ENV_ARTIFACT_ROOT}={url}: cannot open this artifact store ({exc}). Supported are local "
                "paths and s3:// URLs (s3fs comes with nbops[runner])."
            ) from None
        if hasattr(self.fs, "retries"):
            self.fs.retries = 1  # s3fs's loop for throttling and dropped connections
        self.local_root = cache / hashlib.sha256(self.url.encode()).hexdigest()[:16]

    # -- attempts ---------------------------------------------------------------------------

    def claim(self, pipeline: str, run_id: str, stage: str) -> Attempt:
        rel = _stage_rel(pipeline, run_id, stage)
        number = max(self._attempt_numbers(rel), default=0) + 1
        body = json.dumps({"pipeline": pipeline, "run_id": run_id, "stage": stage}).encode()
        while True:
            key = f"{rel}/attempt-{number}"
            try:
                self._retry(
                    f"claim {self._url(key)}",
                    self.fs.pipe_file,
                    self._key(f"{key}/{CLAIM}"),
                    body,
                    mode="create",
                    passthrough=(FileExistsError,),
                )
                break
            except FileExistsError:
                number += 1
        workdir = self.local_root / key
        if workdir.exists():  # a stale mirror from an earlier cache of this store
            shutil.rmtree(workdir)
        try:
            workdir.mkdir(parents=True)
        except OSError as exc:
            raise InfraError(f"{workdir}: cannot create the local copy of the attempt ({exc.strerror}).") from exc
        return Attempt(number, workdir, self._url(key))

    def upload(self, attempt: Attempt, manifest: Manifest | None = None) -> None:
        rel = attempt.workdir.relative_to(self.local_root).as_posix()
        entries = list_files(attempt.workdir) if manifest is None else manifest.files
        for entry in entries:
            path, key = attempt.workdir / entry.path, f"{rel}/{entry.path}"
            if manifest is not None and file_sha256(path) != entry.sha256:
                raise InfraError(f"{path}: changed after the manifest was built (still being written?); not sealed.")
            self._retry(f"upload {self._url(key)}", self.fs.put_file, str(path), self._key(key))

    def begin(self, attempt: Attempt, start: bytes) -> None:
        super().begin(attempt, start)
        self.checkpoint(attempt, START)

    def checkpoint(self, attempt: Attempt, name: str) -> None:
        key = f"{attempt.workdir.relative_to(self.local_root).as_posix()}/{name}"
        self._retry(f"upload {self._url(key)}", self.fs.put_file, str(attempt.workdir / name), self._key(key))

    def attempt_numbers(self, pipeline: str, run_id: str, stage: str) -> list[int]:
        return sorted(self._attempt_numbers(_stage_rel(pipeline, run_id, stage)))

    def seal(self, attempt: Attempt, manifest: Manifest) -> None:
        key = f"{attempt.workdir.relative_to(self.local_root).as_posix()}/{layout.MANIFEST}"
        self._retry(f"upload {self._url(key)}", self.fs.pipe_file, self._key(key), manifest.to_bytes())

    def completed(self, pipeline: str, run_id: str, stage: str) -> Path | None:
        rel = _stage_rel(pipeline, run_id, stage)
        for number in sorted(self._attempt_numbers(rel), reverse=True):
            sealed = self._manifest(f"{rel}/attempt-{number}")
            if sealed is not None:
                return self._download(f"{rel}/attempt-{number}", *sealed)
        return None

    def attempt_dir(self, pipeline: str, run_id: str, stage: str, number: int) -> Path | None:
        rel = layout.attempt_rel(pipeline, run_id, stage, number)
        sealed = self._manifest(rel)
        return None if sealed is None else self._download(rel, *sealed)

    def latest_completed(self, pipeline: str, stage: str) -> Path | None:
        newest: tuple[str, str, Manifest, bytes] | None = None
        for run in self._names(f"runs/{pipeline}"):
            rel = f"runs/{pipeline}/{run}/{stage}"
            for number in sorted(self._attempt_numbers(rel), reverse=True):
                sealed = self._manifest(f"{rel}/attempt-{number}")
                if sealed is not None:
                    stamp = sealed[0].finished_at
                    if newest is None or stamp > newest[0]:
                        newest = (stamp, f"{rel}/attempt-{number}", *sealed)
                    break
        return None if newest is None else self._download(newest[1], newest[2], newest[3])

    def latest_run_key(self, pipeline: str) -> str | None:
        return layout.latest_training_run(self._names(f"runs/{pipeline}"))

    # -- content-addressed files --------------------------------------------------------------

    def publish(self, rel: str, raw: bytes) -> bool:
        current = self._read(rel)
        if current is not None and sha256_matches_name(current, rel):
            return False
        self._retry(f"upload {self._url(rel)}", self.fs.pipe_file, self._key(rel), raw)
        return True

    def put(self, rel: str, raw: bytes) -> None:
        self._retry(f"upload {self._url(rel)}", self.fs.pipe_file, self._key(rel), raw)

    def fetch(self, rel: str) -> Path:
        local = self.local_root / rel
        if local.exists():
            if sha256_matches_name(local.read_bytes(), rel):
                return local
            local.unlink()  # a damaged cached copy: the store's copy decides
        raw = self._read(rel)
        if raw is not None:
            write_atomic(local, raw)
        return local

    # -- reading for audits --------------------------------------------------------------------

    def read_bytes(self, rel: str) -> bytes | None:
        return self._read(rel)

    def digest(self, rel: str) -> str | None:
        def stream() -> str:
            digest = hashlib.sha256()
            with self.fs.open(self._key(rel), "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            return digest.hexdigest()

        try:
            return self._retry(f"read {self._url(rel)}", stream, passthrough=(FileNotFoundError,))
        except FileNotFoundError:
            return None

    def location(self, rel: str) -> str:
        return self._url(rel)

    # -- helpers ----------------------------------------------------------------------------

    def _key(self, rel: str) -> str:
        return f"{self.base.rstrip('/')}/{rel}"

    def _url(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    def _retry(
        self, what: str, call: Callable[..., T], *args: Any, passthrough: tuple[type[OSError], ...] = (), **kwargs: Any
    ) -> T:
        """``call`` under ``ARTIFACT_STORE``. Errors in ``passthrough`` are the caller's to
        handle; any other store error becomes InfraError (exit 3) naming ``what``; anything
        else (a bug, Ctrl-C) propagates untouched."""
        try:
            return ARTIFACT_STORE.call(lambda: call(*args, **kwargs), retry_on=_is_transient)
        except passthrough:
            raise
        except Exception as exc:
            if not _is_store_error(exc):
                raise
            tries = "" if isinstance(exc, _PERMANENT) else f" after {ARTIFACT_STORE.attempts} attempts"
            raise InfraError(f"artifact store: cannot {what}{tries} ({type(exc).__name__}: {exc}).") from exc

    def _read(self, rel: str) -> bytes | None:
        try:
            raw: bytes = self._retry(
                f"read {self._url(rel)}", self.fs.cat_file, self._key(rel), passthrough=(FileNotFoundError,)
            )
        except FileNotFoundError:
            return None
        return raw

    def _names(self, rel: str) -> list[str]:
        try:
            entries = self._retry(
                f"list {self._url(rel)}",
                self.fs.ls,
                self._key(rel),
                detail=False,
                refresh=True,
                passthrough=(FileNotFoundError,),
            )
        except FileNotFoundError:
            return []
        return [PurePosixPath(str(e)).name for e in entries]

    def _attempt_numbers(self, rel: str) -> list[int]:
        return [int(m.group(1)) for name in self._names(rel) if (m := _ATTEMPT.match(name))]

    def _manifest(self, rel: str) -> tuple[Manifest, bytes] | None:
        """The attempt's manifest and its bytes as stored, or None when it has none (unsealed)."""
        raw = self._read(f"{rel}/{layout.MANIFEST}")
        if raw is None:
            return None
        return parse_manifest(raw, f"{self._url(rel)}/{layout.MANIFEST}"), raw

    def _download(self, rel: str, manifest: Manifest, raw: bytes) -> Path:
        """The attempt's files in the local mirror, each checked against the manifest, then
        the manifest's own bytes, last, as in the store.

        Several stages may share the cache: each file is downloaded to a private temp name,
        checked, then renamed into place, so a reader never sees half a file.
        """
        local = self.local_root / rel
        try:
            (local / "outputs").mkdir(parents=True, exist_ok=True)
            for entry in manifest.files:
                target, url = local / entry.path, self._url(f"{rel}/{entry.path}")
                if target.is_file() and file_sha256(target) == entry.sha256:
                    continue
                with replacing(target) as tmp:
                    try:
                        self._retry(
                            f"download {url}", self.fs.get_file, self._key(f"{rel}/{entry.path}"), str(tmp),
                            passthrough=(FileNotFoundError,),
                        )  # fmt: skip
                    except FileNotFoundError:
                        raise InputError(
                            f"{url}: listed in the attempt's manifest but missing from the store."
                        ) from None
                    actual = file_sha256(tmp)
                    if actual != entry.sha256:
                        raise InputError(
                            f"{url}: sha256 {actual} does not match its manifest ({entry.sha256}); the attempt was "
                            "changed after it finished. Nothing was run; re-run the stage that produced it."
                        )
            mirrored = local / layout.MANIFEST
            if not (mirrored.is_file() and mirrored.read_bytes() == raw):
                write_atomic(mirrored, raw)
        except OSError as exc:
            raise InfraError(f"{local}: cannot write the local copy of {self._url(rel)} ({exc}).") from exc
        return local


def _is_transient(exc: BaseException) -> bool:
    """A store error that a later attempt may not meet (not a missing, taken or denied object)."""
    return _is_store_error(exc) and not isinstance(exc, _PERMANENT)


def _is_store_error(exc: BaseException) -> bool:
    """OSError (s3fs translates S3 errors to it) or an error of the S3 client stack itself."""
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore", "aiohttp")


def _stage_rel(pipeline: str, run_id: str, stage: str) -> str:
    return f"runs/{pipeline}/{layout.run_key(run_id)}/{stage}"
