"""Where stage attempts live: the artifact root, its run layout and the manifests (DESIGN §5).

| module     | job                                                                      |
|------------|--------------------------------------------------------------------------|
| `base`     | `Store` (the interface), `Attempt`, the cache directory of remote roots  |
| `local`    | `LocalStore`: a local or mounted directory, used in place                |
| `remote`   | `RemoteStore`: `s3://` mirrored under the cache directory (loads fsspec)  |
| `manifest` | the typed `Manifest`: build, parse, read, write                          |
| `layout`   | paths under a root: runs, stages, attempts; claiming a local attempt     |
| `atomic`   | the one atomic file writer                                               |

``open_store`` is the only place that knows both stores; it imports each on demand, so that
importing this package (as the DAG factory does, for ``layout``) loads neither pydantic nor
fsspec.
"""

from __future__ import annotations

import os
from pathlib import Path

from nbops.storage import layout
from nbops.storage.base import Attempt, Store, cache_dir

__all__ = ["Attempt", "Store", "open_store"]


def open_store(pipeline_dir: Path) -> Store:
    """The store named by ``$NBOPS_ARTIFACT_ROOT``, or ``.nbops/artifacts`` beside the pipeline.

    Raises:
        InputError: the variable names a scheme other than s3://, or an unusable URL.
    """
    value = os.environ.get(layout.ENV_ARTIFACT_ROOT, "").strip()
    if layout.is_remote(value):
        from nbops.storage.remote import RemoteStore

        return RemoteStore(value, cache_dir())
    from nbops.storage.local import LocalStore

    return LocalStore(layout.artifact_root(pipeline_dir))
