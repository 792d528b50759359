"""Settings from the environment: the same names locally and on AWS (see DESIGN.md)."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from core.imaging.limits import Limits
from core.imaging.profile import rendering_profile
from core.imaging.specs import RenditionSpec, parse_renditions

# What one record may add to the process's peak RSS, per decoded pixel, at worst. Measured at
# the default limits (50 MP) on the worst accepted inputs (README, "Memory"): 16-bit grey PNG
# 525 MB (11 B/px), 48 MP HEIC 334 MB, RGBA PNG with an ICC profile 417 MB, JPEG 18 MB.
# Rounded up to 12 B/px for headroom.
WORST_BYTES_PER_PIXEL = 12
# The process before any record: 66 MB measured after init, rounded up for Lambda's runtime
# client and the connection pools.
BASE_MEMORY_MB = 128


def default_workers(memory_mb: int | None, max_pixels: int, cpus: int | None = None) -> int:
    """As many records at once as fit in memory at their worst, and no more than the CPUs:
    ``min(vCPUs, (memory - base) // per-record budget)``, at least 1. Lambda reports 2 CPUs
    from 128 MB up, so on Lambda the memory decides (AWS_LAMBDA_FUNCTION_MEMORY_SIZE)."""
    cpus = cpus or os.cpu_count() or 1
    if memory_mb is None:
        return cpus
    budget_mb = max_pixels * WORST_BYTES_PER_PIXEL / 2**20
    return max(1, min(cpus, int((memory_mb - BASE_MEMORY_MB) // budget_mb)))


def idle_cores(workers: int, cpus: int | None = None) -> int:
    """Threads for the shared encode pool by default: the cores that ``workers`` records at
    once leave idle, plus the records' own (``cpus - workers + 1``, at least 1). Measured on a
    saturated machine, the pool's hand-offs cost about 8 % more CPU for no gain in wall time,
    so it is 1 (everything on the record's thread) when the records fill the cores."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, cpus - workers + 1)


class SettingsError(ValueError):
    """A missing or invalid setting; the message names the variable."""


AUTH_MODES = ("cognito", "jwt", "iam", "none")


@dataclass(frozen=True)
class AuthSettings:
    """How callers of the HTTP API are authenticated (the template's AuthMode) and, for
    cognito, where the page signs in. Unset, the mode is cognito: an API without its
    authorizer's context refuses every caller rather than serving everyone."""

    mode: str = "cognito"
    user_pool_id: str = ""
    client_id: str = ""
    endpoint: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "AuthSettings":
        mode = env.get("IMGPIPE_AUTH_MODE", "").strip() or "cognito"
        if mode not in AUTH_MODES:
            raise SettingsError(f"IMGPIPE_AUTH_MODE: one of {', '.join(AUTH_MODES)}, got {mode!r}")
        return cls(
            mode=mode,
            user_pool_id=env.get("IMGPIPE_AUTH_USER_POOL_ID", ""),
            client_id=env.get("IMGPIPE_AUTH_CLIENT_ID", ""),
            endpoint=env.get("IMGPIPE_AUTH_ENDPOINT", ""),
        )


@dataclass(frozen=True)
class Settings:
    raw_bucket: str
    output_bucket: str
    table: str
    queue_url: str
    renditions: tuple[RenditionSpec, ...]
    max_bytes: int
    max_pixels: int
    workers: int
    cdn_domain: str
    safety_margin_ms: int = 10_000
    deleted_retention_days: int = 30
    auth: AuthSettings = AuthSettings()
    # Threads of the process's shared encode executor (core.imaging.parallel): a record's
    # renditions are encoded on them while its next rendition is resized. 1 encodes inline.
    encode_threads: int = 1
    # A record's distinct renditions are written this many at a time (each PUT mostly waits on
    # S3); 1 writes them one after another.
    parallel_puts: int = 4

    @cached_property
    def profile(self) -> str:
        """The rendering profile of these renditions (``core.imaging.profile``), hashed once
        per settings rather than up to three times per record."""
        return rendering_profile(self.renditions)

    @property
    def cdn_url(self) -> str:
        """The CDN's base URL: ``https://{IMGPIPE_CDN_DOMAIN}``, or the value itself when it
        names a scheme (the local stack's CloudFront stand-in is plain HTTP on loopback)."""
        domain = self.cdn_domain.rstrip("/")
        return domain if "://" in domain else f"https://{domain}"

    @property
    def limits(self) -> Limits:
        return Limits(max_bytes=self.max_bytes, max_pixels=self.max_pixels)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        max_pixels = _positive_int(env, "IMGPIPE_MAX_PIXELS", 50_000_000)
        memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "").strip()
        workers = default_workers(int(memory) if memory.isdigit() else None, max_pixels)
        record_threads = _positive_int(env, "IMGPIPE_WORKERS", workers)
        return cls(
            raw_bucket=env.get("IMGPIPE_RAW_BUCKET", ""),
            output_bucket=env.get("IMGPIPE_OUTPUT_BUCKET", ""),
            table=env.get("IMGPIPE_TABLE", ""),
            queue_url=env.get("IMGPIPE_QUEUE_URL", ""),
            renditions=parse_renditions(env.get("IMGPIPE_RENDITIONS")),
            max_bytes=_positive_int(env, "IMGPIPE_MAX_BYTES", 50 * 1024 * 1024),
            max_pixels=max_pixels,
            workers=record_threads,
            cdn_domain=env.get("IMGPIPE_CDN_DOMAIN", ""),
            safety_margin_ms=_positive_int(env, "IMGPIPE_SAFETY_MARGIN_MS", 10_000),
            deleted_retention_days=_positive_int(env, "IMGPIPE_DELETED_RETENTION_DAYS", 30),
            auth=AuthSettings.from_env(env),
            encode_threads=_positive_int(env, "IMGPIPE_ENCODE_THREADS", idle_cores(record_threads)),
            parallel_puts=_positive_int(env, "IMGPIPE_PARALLEL_PUTS", 4),
        )

    def check_processing(self) -> None:
        """Refuse to start without the buckets and table, or when output would re-trigger input."""
        self.require("raw_bucket", "output_bucket", "table")
        if self.raw_bucket == self.output_bucket:
            raise SettingsError(
                "IMGPIPE_OUTPUT_BUCKET must differ from IMGPIPE_RAW_BUCKET: writing renditions "
                "into the raw bucket would trigger the pipeline on its own output"
            )

    def require(self, *names: str) -> None:
        """Fail fast, naming every missing setting, before the first record is touched."""
        missing = [f"IMGPIPE_{n.upper()}" for n in names if not getattr(self, n)]
        if missing:
            raise SettingsError(f"missing setting(s): {', '.join(missing)}")


def fault_injection() -> tuple[str, str] | None:
    """The embedded stack's fault injection, for the tests of the retry path: the folder of
    tokens and the object key (``IMGPIPE_CHAOS_DIR``, ``IMGPIPE_CHAOS_KEY``), when both are set."""
    folder, key = os.environ.get("IMGPIPE_CHAOS_DIR", ""), os.environ.get("IMGPIPE_CHAOS_KEY", "")
    return (folder, key) if folder and key else None


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}: expected an integer, got {text!r}") from None
    if value < 1:
        raise SettingsError(f"{name}: must be at least 1, got {value}")
    return value
