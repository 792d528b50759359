"""Who may see what: the caller's identity, the key an upload gets, and the one read rule.

Uploads go under ``uploads/{owner}/{uuid}/{name}``, so a raw key names its owner before any
record exists (an image still being processed has one too). ``owner`` is the caller's
``sub`` (JWT) or ARN (IAM), percent-encoded into one key segment.
"""

import re
import unicodedata
import uuid
from dataclasses import dataclass
from urllib.parse import quote, unquote

ADMIN_GROUP = "imgpipe-admins"
UPLOAD_PREFIX = "uploads/"
MAX_NAME_BYTES = 200  # of the file name's UTF-8; S3 keys hold 1,024 bytes
_SEPARATORS = re.compile(r"-{2,}")


@dataclass(frozen=True)
class Identity:
    """The caller as the API's authorizer established it."""

    subject: str
    admin: bool = False


def may_read(identity: Identity, image_id: str, owner: str | None = None) -> bool:
    """Admins read every image; anyone else only their own. ``owner`` is the record's; without
    one (no record yet, or none recorded) the raw key's ``uploads/{owner}/`` prefix decides."""
    if identity.admin:
        return True
    found = owner if owner is not None else owner_of_key(image_id.partition("/")[2])
    return found is not None and found == identity.subject


def upload_key(owner: str, filename: str) -> str:
    """``uploads/{owner}/{uuid}/{name}`` for a new upload."""
    return f"{UPLOAD_PREFIX}{_owner_segment(owner)}/{uuid.uuid4().hex}/{safe_filename(filename)}"


def owner_of_key(key: str) -> str | None:
    """The owner a raw key names (``uploads/{owner}/{uuid}/{name}``), None for other keys."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != UPLOAD_PREFIX.rstrip("/") or not parts[1]:
        return None
    return unquote(parts[1])


def _owner_segment(owner: str) -> str:
    """One key segment, reversible (so two owners never share one): percent-encoded, and no
    ``.``/``..`` segment."""
    segment = quote(owner, safe="")
    return segment.replace(".", "%2E") if segment.strip(".") == "" else segment


def safe_filename(name: str) -> str:
    """A safe last key segment that keeps the name in any script: the last path component only
    (no directories, no traversal), NFC-normalised, letters, marks, digits and ``._-`` kept and
    every run of anything else one ``-``, no leading or trailing dot or dash, at most
    ``MAX_NAME_BYTES`` of UTF-8 (the end kept: it holds the extension)."""
    base = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    kept = "".join(c if _allowed(c) else "-" for c in base)
    cleaned = _SEPARATORS.sub("-", kept).strip(".-")
    while len(cleaned.encode()) > MAX_NAME_BYTES:
        cleaned = cleaned[1:]
    return cleaned.strip(".-") or "upload"


def _allowed(char: str) -> bool:
    return char in "._-" or unicodedata.category(char)[0] in "LMN"
