"""Incremental runs in the stage attempt's slots (DESIGN §13): the key, the lookup before the
claim, and the index entry after the seal. The key and the index are :mod:`nbops.stage.cache`."""

from __future__ import annotations

from nbops.stage import cache
from nbops.stage.attempt_record import image
from nbops.stage.phases import Located, Sealed
from nbops.stage.slots import AttemptHooks, CacheHit


class Reuse(AttemptHooks):
    """A stage with ``cache: true`` (the default) reuses a completed attempt made under the same key."""

    def reuse_key(self, located: Located) -> str | None:
        prepared = located.prepared
        if not prepared.stage.cache:
            return None
        return cache.stage_key(
            pipeline=prepared.pipeline.name,
            stage=prepared.stage.name,
            notebook_sha256=prepared.contract.notebook.sha256,
            files=cache.carried_files(prepared.pipeline, prepared.stage.name),
            parameters=prepared.effective,
            inputs=located.consumed,
            environment_id=cache.environment_id(image()),
        )

    def before_claim(self, located: Located, key: str) -> CacheHit | None:
        prepared = located.prepared
        return cache.lookup(prepared.store, prepared.pipeline.name, prepared.unit, key)

    def after_seal(self, sealed: Sealed) -> None:
        """Index the sealed attempt under its key; a store that refuses leaves it standing, only not reusable."""
        from nbops.errors import InfraError
        from nbops.stage.lifecycle import log

        if sealed.manifest is None:
            return
        try:
            cache.remember(sealed.claimed.prepared.store, sealed.manifest)
        except InfraError as exc:
            log(f"{exc}; the attempt is not indexed for reuse")
