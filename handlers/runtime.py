"""The adapters a handler builds once per container: its settings and pooled AWS clients.

Each function caches its own (``handlers.process.runtime``, ``handlers.api.runtime``): the
two run with different roles and check different settings.
"""

from dataclasses import dataclass

from core.aws import DynamoCatalog, S3Storage, images_catalog, s3_client
from core.settings import Settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    storage: S3Storage
    catalog: DynamoCatalog


def connect(settings: Settings, pool_size: int = 10) -> Runtime:
    """The storage and catalog adapters, each client pooling ``pool_size`` connections (one
    per thread that uses it)."""
    return Runtime(
        settings,
        S3Storage(s3_client(pool_size)),
        images_catalog(settings.table, pool_size),
    )


def connect_from_env(*required: str) -> Runtime:
    """The adapters for the settings in the environment, after checking ``required`` ones."""
    settings = Settings.from_env()
    settings.require(*required)
    return connect(settings)
