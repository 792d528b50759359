"""Strict checker for S3 browser-based uploads: a form POST authorized by a SigV4 POST policy.

moto accepts any form POST, so the local stack puts this in front of the raw bucket. It follows
the S3 docs "Browser-Based Uploads Using POST (AWS Signature Version 4)", "POST Policy" and
"Calculating a Signature"; error wording is S3's, from the docs or from recorded S3 answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import NoReturn
from xml.sax.saxutils import escape

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Event, Field, File, MultipartDecoder, NeedData

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_PRE_DATA = 20480  # "The form data and boundaries (excluding the file) cannot exceed 20 KB"
MAX_KEY_BYTES = 1024
EXEMPT = ("x-amz-signature", "file", "policy")  # and names prefixed x-ignore-
HEADERS = ("Cache-Control", "Content-Type", "Content-Disposition", "Content-Encoding", "Expires")
AUTH = {f"x-amz-{n}" for n in ("algorithm", "credential", "date", "signature", "security-token")}
REQUIRED = ("Policy", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Signature")
OPERATIONS = ("eq", "starts-with", "content-length-range")
EXPIRATION_RE = re.compile(r"(?a)(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z")
FILENAME_RE = re.compile(r'(?:^|;)\s*filename\s*=\s*"([^"]*)"', re.IGNORECASE)
XML_INVALID_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

MISSING = "Bucket POST must contain a field named '{}'.  If it is specified, please check the "
MISSING += "order of the fields."
MALFORMED = "The body of your POST request is not well-formed multipart/form-data."
PRE_DATA = "Your POST request fields preceeding the upload file was too large."  # sic, as S3
NOT_MULTIPART = "Bucket POST must be of the enclosure-type multipart/form-data"
PRECONDITION = "At least one of the pre-conditions you specified did not hold"
SIGV2 = "The authorization mechanism you have provided is not supported. Please use "
SIGV2 += ALGORITHM + "."
BAD_SIGNATURE = "The request signature we calculated does not match the signature you provided. "
BAD_SIGNATURE += "Check your key and signing method."
UNKNOWN_KEY = "The AWS Access Key Id you provided does not exist in our records."
CREDENTIAL_FORM = '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request"'
DAY_FORMAT = 'This date in the credential must be in the format "yyyyMMdd".'
EXPIRED = "Invalid according to Policy: Policy expired."
FAILED = "Invalid according to Policy: Policy Condition failed: "
EXTRA = "Invalid according to Policy: Extra input fields: "
TOO_SMALL = "Your proposed upload is smaller than the minimum allowed size"
TOO_LARGE = "Your proposed upload exceeds the maximum allowed size"
BAD_JSON = "Invalid Policy: Invalid JSON."
SIMPLE = "Invalid Policy: Invalid Simple-Condition: "


class PostPolicyError(Exception):
    """An S3 error answer: code, message, HTTP status and the extra XML elements."""

    def __init__(
        self, code: str, message: str, status: int, extra: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status
        self.extra: dict[str, str] = {k: str(v) for k, v in (extra or {}).items()}


@dataclass(frozen=True)
class FormUpload:
    """A form POST that passed every check."""

    bucket: str
    key: str  # with ${filename} substituted
    fields: dict[str, str]  # every field but the file, names as sent, ${filename} substituted
    content: bytes
    access_key_id: str
    session_token: str | None

    def header_fields(self) -> dict[str, str]:
        """Fields S3 stores as object headers: the REST headers and x-amz-* (lower-cased)."""
        rest = {h.lower(): h for h in HEADERS}
        out: dict[str, str] = {}
        for name, value in self.fields.items():
            if (low := name.lower()) in rest or (low.startswith("x-amz-") and low not in AUTH):
                out[rest.get(low, low)] = value
        return out


@dataclass(frozen=True)
class _Condition:
    op: str  # one of OPERATIONS
    name: str | None  # lower-case field name; None when the policy left out the "$"
    value: str  # the eq / starts-with operand
    bounds: tuple[int, int] | None  # content-length-range; None when not integers
    text: str  # the condition as S3 prints it in "Policy Condition failed"


def _fail(code: str, message: str, status: int = 400, /, **extra: object) -> NoReturn:
    raise PostPolicyError(code, message, status, extra)


def _bad_policy(message: str) -> NoReturn:
    _fail("InvalidPolicyDocument", message)


def _bad_arg(message: str, name: str, value: str, **extra: object) -> NoReturn:
    _fail("InvalidArgument", message, 400, ArgumentName=name, ArgumentValue=value, **extra)


def _events(decoder: MultipartDecoder, body: bytes) -> Iterator[tuple[bool, Event]]:
    """Decoder events, each flagged when it needed bytes past the first MAX_PRE_DATA."""
    for past_limit, chunk in ((False, body[:MAX_PRE_DATA]), (True, body[MAX_PRE_DATA:])):
        decoder.receive_data(chunk)
        if past_limit:
            decoder.receive_data(None)
        while not isinstance(event := decoder.next_event(), NeedData):
            yield past_limit and len(body) > MAX_PRE_DATA, event
            if isinstance(event, Epilogue):
                return


def parse_form(body: bytes, content_type: str) -> tuple[dict[str, str], bytes, str]:
    """multipart/form-data -> (fields, file bytes, file name as sent or ""). The file is the
    part named ``file``, and S3 ignores every part after it. Repeated names join with commas."""
    mimetype, options = parse_options_header(content_type)
    if mimetype != "multipart/form-data":
        _fail("PreconditionFailed", PRECONDITION, 412, Condition=NOT_MULTIPART)
    if not options.get("boundary"):
        _fail("MalformedPOSTRequest", MALFORMED)
    fields: dict[str, str] = {}
    spelling: dict[str, str] = {}
    part: Field | File | None = None
    chunks: list[bytes] = []
    try:
        for past_limit, event in _events(MultipartDecoder(options["boundary"].encode()), body):
            in_file = part is not None and part.name.lower() == "file"
            if past_limit and not in_file:
                limit = {"MaxPostPreDataLengthBytes": MAX_PRE_DATA}
                _fail("MaxPostPreDataLengthExceeded", PRE_DATA, 400, **limit)
            if isinstance(event, (Field, File)):
                if not event.name:
                    _fail("MalformedPOSTRequest", MALFORMED)
                part, chunks = event, []
            elif isinstance(event, Data) and part is not None:
                chunks.append(event.data)
                if event.more_data:
                    continue
                if in_file:
                    return fields, b"".join(chunks), _filename(part)
                value = b"".join(chunks).decode("utf-8")  # "The form ... must be UTF-8 encoded"
                name = spelling.setdefault(part.name.lower(), part.name)
                fields[name] = f"{fields[name]},{value}" if name in fields else value
    except ValueError:  # werkzeug's decoder and UTF-8 decoding raise ValueError
        _fail("MalformedPOSTRequest", MALFORMED)
    _bad_arg("POST requires exactly one file upload per request.", "file", "0")


def _filename(part: Field | File) -> str:
    """The filename parameter as sent: browsers do not escape "\\" (werkzeug unescapes it)."""
    raw = FILENAME_RE.search(part.headers.get("content-disposition", ""))
    return raw[1] if raw else getattr(part, "filename", None) or ""


def signing_key(secret: str, day: str, region: str, service: str = "s3") -> bytes:
    """SigV4 kSigning: HMAC-SHA256 chain from "AWS4"+secret over day, region, service, terminal."""
    key = ("AWS4" + secret).encode("utf-8")
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def sign_policy(policy_b64: str, secret: str, day: str, region: str) -> str:
    """The x-amz-signature of a form: hex HMAC-SHA256 of the base64 policy text."""
    key = signing_key(secret, day, region)
    return hmac.new(key, policy_b64.encode("utf-8"), hashlib.sha256).hexdigest()


def _time(text: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    except ValueError:
        return None


def _read_auth(form: Mapping[str, str], region: str | None) -> tuple[str, str, str]:
    """The key and SigV4 fields, in the order S3 reports them missing or malformed."""
    if not form.get("key"):
        _bad_arg(MISSING.format("key"), "key", "")
    if not any(name.lower() in form for name in REQUIRED):
        if "awsaccesskeyid" in form or "signature" in form:
            _fail("InvalidRequest", SIGV2)
        _fail("AccessDenied", "Access Denied", 403)  # anonymous; the bucket is not public
    for name in REQUIRED:
        if name.lower() not in form:
            _bad_arg(MISSING.format(name), name, "")
    if (algorithm := form["x-amz-algorithm"]) != ALGORITHM:
        _bad_arg(f'X-Amz-Algorithm only supports "{ALGORITHM}"', "X-Amz-Algorithm", algorithm)
    credential, date = form["x-amz-credential"], form["x-amz-date"]
    akid, day, scope_region = _parse_credential(credential, region)
    if not re.fullmatch(r"[0-9]{8}T[0-9]{6}Z", date) or not _time(date, "%Y%m%dT%H%M%SZ"):
        _bad_arg("X-Amz-Date must be formated via ISO8601 Long format", "X-Amz-Date", date)
    if date[:8] != day:
        msg = f'Invalid credential date "{day}". This date is not the same as X-Amz-Date: '
        _bad_arg(f'{msg}"{date[:8]}".', "X-Amz-Credential", credential)
    return akid, day, scope_region


def _parse_credential(credential: str, region: str | None) -> tuple[str, str, str]:
    """AKID/yyyymmdd/region/s3/aws4_request -> (AKID, yyyymmdd, region)."""
    parts = credential.split("/")

    def bad(message: str, **extra: object) -> NoReturn:
        _bad_arg(message, "X-Amz-Credential", credential, **extra)

    if len(parts) != 5:
        bad(f"the Credential is mal-formed; expecting {CREDENTIAL_FORM}.")
    akid, day, scope_region, service, terminal = parts
    if not akid:
        bad("a non-empty Access Key (AKID) must be provided in the credential.")
    if not re.fullmatch(r"[0-9]{8}", day) or not _time(day, "%Y%m%d"):
        bad(f'incorrect date format "{day}". {DAY_FORMAT}')
    if not scope_region:
        bad("a non-empty region must be provided in the credential.")
    if region is not None and scope_region != region:
        bad(f"the region '{scope_region}' is wrong; expecting '{region}'", Region=region)
    if service != "s3":
        bad(f'incorrect service "{service}". This endpoint belongs to "s3".')
    if terminal != "aws4_request":
        bad(f'incorrect terminal "{terminal}". This endpoint uses "aws4_request".')
    return akid, day, scope_region


def _verify_signature(form: Mapping[str, str], scope: tuple[str, str, str], secret: str) -> None:
    """Constant-time compare with the signature over the base64 policy as received."""
    (akid, day, region), policy, signature = scope, form["policy"], form["x-amz-signature"]
    expected = sign_policy(policy, secret, day, region)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8")):
        policy_bytes = " ".join(f"{b:02x}" for b in policy.encode("utf-8"))
        extra = {"AWSAccessKeyId": akid, "StringToSign": policy}
        extra |= {"SignatureProvided": signature, "StringToSignBytes": policy_bytes}
        _fail("SignatureDoesNotMatch", BAD_SIGNATURE, 403, **extra)


def _decode_policy(policy: str) -> tuple[datetime, list[_Condition]]:
    """base64 JSON -> (expiration, conditions), or InvalidPolicyDocument."""
    try:
        raw = base64.b64decode(policy, validate=True)
    except ValueError:
        _bad_policy("Invalid Policy: invalid Base64 encoding.")
    try:  # a float becomes a Decimal, which no operand accepts
        doc = json.loads(raw.decode("utf-8"), parse_float=Decimal)
    except (ValueError, RecursionError):
        _bad_policy(BAD_JSON)
    if not isinstance(doc, dict):
        _bad_policy(BAD_JSON)
    for name in doc:
        if name not in ("expiration", "conditions"):
            _bad_policy(f"Invalid Policy: Unexpected: '{name.lower()}'")
    if "expiration" not in doc:
        _bad_policy("Invalid Policy: Policy missing expiration.")
    if "conditions" not in doc:
        _bad_policy("Invalid Policy: Policy missing conditions.")
    if not isinstance(doc["conditions"], list):
        _bad_policy("Invalid Policy: Invalid 'conditions' value: must be a List.")
    return _expiration(doc["expiration"]), [_condition(c) for c in doc["conditions"]]


def _expiration(value: object) -> datetime:
    """ISO 8601 in UTC, with or without fractional seconds: 2015-12-30T12:00:00.000Z."""
    match = EXPIRATION_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None or (stamp := _time(match[1], "%Y-%m-%dT%H:%M:%S")) is None:
        _bad_policy(f"Invalid Policy: Invalid 'expiration' value: '{value}'")
    return stamp.replace(microsecond=int((match[2] or "0")[:6].ljust(6, "0")))


def _condition(raw: object) -> _Condition:
    """One policy condition, checked for shape; {"f": "v"} is ["eq", "$f", "v"]."""
    if isinstance(raw, dict):
        if len(raw) != 1:
            _bad_policy(SIMPLE + "Simple-Conditions must have exactly one property specified.")
        ((name, value),) = raw.items()
        if not isinstance(value, str):
            _bad_policy(BAD_JSON if value is None else SIMPLE + "value must be a string.")
        raw = ["eq", "$" + name, value]
    if not isinstance(raw, list):
        _bad_policy("Invalid Policy: Invalid condition test: must be a List or Object.")
    if not raw or not isinstance(raw[0], str):
        _bad_policy("Invalid Policy: Invalid Condition: missing operation identifier.")
    if (op := raw[0].lower()) not in OPERATIONS:
        _bad_policy(f"Invalid Policy: Invalid Condition: unknown operation '{raw[0]}'.")
    if len(raw) != 3:
        _bad_policy(f"Invalid Policy: Invalid {raw[0]}: wrong number of arguments.")
    if op == "content-length-range":  # operands are checked before printing the condition
        bounds = _bounds(raw[1], raw[2])
        return _Condition(op, None, "", bounds, json.dumps(raw, ensure_ascii=False))
    if not isinstance(raw[1], str) or not isinstance(raw[2], str):
        _bad_policy(BAD_JSON)
    name = raw[1][1:].lower() if raw[1].startswith("$") else None
    exact_only = name in ("bucket", "success_action_status") or (
        name is not None and name.startswith("x-amz-") and not name.startswith("x-amz-meta-")
    )
    if op == "starts-with" and exact_only:  # the docs' table: exact matching only
        _bad_policy(
            f"Invalid Policy: Invalid starts-with: '{raw[1]}' supports exact matching only."
        )
    return _Condition(op, name, raw[2], None, json.dumps(raw, ensure_ascii=False))


def _bounds(low: object, high: object) -> tuple[int, int] | None:
    """Integers or strings of digits (S3 takes "5"); None for other strings."""
    values: list[int] = []
    for bound in (low, high):
        if isinstance(bound, str):
            if not re.fullmatch(r"[0-9]+", bound):
                return None
            values.append(int(bound))
        elif isinstance(bound, int) and not isinstance(bound, bool):
            values.append(bound)
        else:
            _bad_policy(BAD_JSON)
    return values[0], values[1]


def _check_condition(cond: _Condition, form: Mapping[str, str], bucket: str, size: int) -> None:
    """Raise unless the condition holds; a field the form lacks fails every condition on it."""
    if cond.op == "content-length-range":
        if cond.bounds is None:
            _fail("AccessDenied", FAILED + cond.text, 403)
        low, high = cond.bounds
        if size < low:
            _fail("EntityTooSmall", TOO_SMALL, 400, ProposedSize=size, MinSizeAllowed=low)
        if size > high:
            _fail("EntityTooLarge", TOO_LARGE, 400, ProposedSize=size, MaxSizeAllowed=high)
        return
    values = [bucket] if cond.name == "bucket" else []  # the bucket the request was sent to
    if cond.name is not None and cond.name in form:
        values.append(form[cond.name])
    if cond.op == "eq":
        ok = all(value == cond.value for value in values)
    elif cond.name == "content-type":  # a comma-separated list: every member must match
        ok = all(item.startswith(cond.value) for value in values for item in value.split(","))
    else:
        ok = all(value.startswith(cond.value) for value in values)
    if not (values and ok):
        _fail("AccessDenied", FAILED + cond.text, 403)


def check_upload(
    bucket: str,
    body: bytes,
    content_type: str,
    secret_for: Callable[[str, str | None], str | None],
    now: datetime | None = None,
    *,
    region: str | None = None,
) -> FormUpload:
    """Raise PostPolicyError on the first violation, else return the validated upload.

    ``secret_for(access_key_id, session_token)`` gives the secret key, or None for an unknown
    key. ``region``, when given, is the bucket's region, which the credential scope must name.
    """
    raw_fields, content, filename = parse_form(body, content_type)
    basename = re.split(r"[/\\]", filename)[-1]  # "only the text following the last slash"
    fields = {name: value.replace("${filename}", basename) for name, value in raw_fields.items()}
    form = {name.lower(): value for name, value in fields.items()}
    scope = _read_auth(form, region)
    akid, token = scope[0], form.get("x-amz-security-token")
    if (secret := secret_for(akid, token)) is None:
        _fail("InvalidAccessKeyId", UNKNOWN_KEY, 403, AWSAccessKeyId=akid)
    _verify_signature(form, scope, secret)
    expiration, conditions = _decode_policy(form["policy"])
    moment = now or datetime.now(UTC)
    if (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) > expiration:
        _fail("AccessDenied", EXPIRED, 403)
    for cond in conditions:
        _check_condition(cond, form, bucket, len(content))
    covered = {cond.name for cond in conditions}
    for name in fields:
        lower = name.lower()
        if lower not in EXEMPT and not lower.startswith("x-ignore-") and lower not in covered:
            _fail("AccessDenied", EXTRA + name, 403)
    if (size := len(form["key"].encode("utf-8"))) > MAX_KEY_BYTES:
        _fail("KeyTooLongError", "Your key is too long", 400, Size=size, MaxSizeAllowed=1024)
    return FormUpload(bucket, form["key"], fields, content, akid, token)


def error_xml(error: PostPolicyError, request_id: str | None = None) -> bytes:
    """S3's XML error body: Code, Message, the extra elements, RequestId and HostId."""
    host_id = base64.b64encode(secrets.token_bytes(48)).decode()
    items = [("Code", error.code), ("Message", error.message), *error.extra.items()]
    items += [("RequestId", request_id or secrets.token_hex(8).upper()), ("HostId", host_id)]
    inner = "".join(f"<{k}>{escape(XML_INVALID_RE.sub(chr(0xFFFD), v))}</{k}>" for k, v in items)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}</Error>'.encode()
