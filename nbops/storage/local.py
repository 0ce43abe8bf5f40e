"""A local or mounted directory as the artifact root, used in place (DESIGN §5)."""

from __future__ import annotations

from pathlib import Path

from nbops.errors import InfraError
from nbops.storage import layout
from nbops.storage.atomic import write_atomic
from nbops.storage.base import Attempt, Store, sha256_matches_name
from nbops.storage.manifest import Manifest, file_sha256, read_manifest, write_manifest


class LocalStore(Store):
    """The attempt directory is the stage's working directory: nothing to upload."""

    def __init__(self, root: Path) -> None:
        self.root = self.local_root = root
        self.url = str(root)

    @property
    def mlflow_location(self) -> str:
        return (self.root / "mlflow").as_uri()

    def claim(self, pipeline: str, run_id: str, stage: str) -> Attempt:
        number, path = layout.claim_attempt(layout.stage_dir(self.root, pipeline, run_id, stage))
        return Attempt(number, path, str(path))

    def upload(self, attempt: Attempt, manifest: Manifest | None = None) -> None:
        """Nothing to copy: the stage wrote into the store directly."""

    def checkpoint(self, attempt: Attempt, name: str) -> None:
        """Nothing to copy: the attempt directory is in the store."""

    def attempt_numbers(self, pipeline: str, run_id: str, stage: str) -> list[int]:
        return [n for n, _ in layout.attempts(layout.stage_dir(self.root, pipeline, run_id, stage))]

    def seal(self, attempt: Attempt, manifest: Manifest) -> None:
        write_manifest(attempt.workdir, manifest)

    def completed(self, pipeline: str, run_id: str, stage: str) -> Path | None:
        return layout.latest_complete(layout.stage_dir(self.root, pipeline, run_id, stage))

    def attempt_dir(self, pipeline: str, run_id: str, stage: str, number: int) -> Path | None:
        path = self.root / layout.attempt_rel(pipeline, run_id, stage, number)
        return path if (path / layout.MANIFEST).is_file() else None

    def latest_completed(self, pipeline: str, stage: str) -> Path | None:
        """Raises InputError when a candidate's manifest is unreadable (as a remote store does)."""
        base = self.root / "runs" / pipeline
        if not base.is_dir():
            return None
        candidates = [p for run in base.iterdir() if (p := layout.latest_complete(run / stage)) is not None]
        return max(candidates, key=lambda p: (read_manifest(p).finished_at, p.as_posix()), default=None)

    def latest_run_key(self, pipeline: str) -> str | None:
        return layout.latest_run_id(self.root, pipeline)

    def publish(self, rel: str, raw: bytes) -> bool:
        path = self.root / rel
        if path.exists() and sha256_matches_name(path.read_bytes(), rel):
            return False
        write_atomic(path, raw)
        return True

    def put(self, rel: str, raw: bytes) -> None:
        write_atomic(self._path(rel), raw)

    def fetch(self, rel: str) -> Path:
        return self.root / rel

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return self._path(rel).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InfraError(f"{self._path(rel)}: cannot read ({exc.strerror or exc}).") from exc

    def digest(self, rel: str) -> str | None:
        path = self._path(rel)
        try:
            return file_sha256(path)
        except (FileNotFoundError, IsADirectoryError):
            return None
        except OSError as exc:
            raise InfraError(f"{path}: cannot read ({exc.strerror or exc}).") from exc

    def location(self, rel: str) -> str:
        return str(self._path(rel))

    def _path(self, rel: str) -> Path:
        return self.root / rel
