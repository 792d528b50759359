"""Tenancy: upload keys that keep any script's names, the owner a key names, the read rule,
and the caller's identity from API Gateway's authorizer context."""

import pytest
from aws_lambda_powertools.event_handler.exceptions import UnauthorizedError

from core.tenancy import Identity, may_read, owner_of_key, safe_filename, upload_key
from handlers.identity import ANONYMOUS, caller


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("写真.jpg", "写真.jpg"),
        ("../../etc/Cät photo.JPG", "Cät-photo.JPG"),
        ("C:\\Users\\x\\фото 1.png", "фото-1.png"),
        ("e\u0301te\u0301.heic", "\u00e9t\u00e9.heic"),  # NFC: the composed form
        ("..", "upload"),
        ("%2e%2e%2f.jpg", "2e-2e-2f.jpg"),
        ("a\u202eb\u200b.jpg", "a-b-.jpg"),  # bidi override and zero-width space go
        ("a?b#c+d&e.png", "a-b-c-d-e.png"),
    ],
)
def test_safe_filenames_keep_the_name_in_any_script(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_long_names_keep_their_end_within_the_byte_limit() -> None:
    name = safe_filename("猫" * 300 + ".jpg")
    assert name.endswith(".jpg") and len(name.encode()) <= 200


def test_upload_keys_name_their_owner_reversibly() -> None:
    key = upload_key("2f7c-sub", "写真.jpg")
    assert key.startswith("uploads/2f7c-sub/") and key.endswith("/写真.jpg")
    assert owner_of_key(key) == "2f7c-sub"
    arn = "arn:aws:iam::123456789012:user/a/b"
    assert owner_of_key(upload_key(arn, "x.png")) == arn
    assert owner_of_key(upload_key("..", "x.png")) == ".."
    assert upload_key("..", "x.png").split("/")[1] == "%2E%2E"
    assert owner_of_key("uploads/0f3c/cat.jpg") is None  # no owner segment
    assert owner_of_key("elsewhere/u/1/cat.jpg") is None


def test_only_owners_and_admins_may_read() -> None:
    alice, bob, admin = Identity("alice"), Identity("bob"), Identity("root", admin=True)
    image_id = "raw/" + upload_key("alice", "a.jpg")
    assert may_read(alice, image_id) and not may_read(bob, image_id) and may_read(admin, image_id)
    assert may_read(bob, image_id, owner="bob")  # the record's owner decides when present
    assert not may_read(alice, "raw/uploads/0f3c/cat.jpg")  # no owner: admins only
    assert may_read(admin, "raw/uploads/0f3c/cat.jpg")


def event_with(authorizer: dict[str, object]) -> dict[str, object]:
    return {"requestContext": {"authorizer": authorizer}}


def test_the_caller_comes_from_the_authorizer_context() -> None:
    claims = {"sub": "u-1", "cognito:groups": "[editors imgpipe-admins]"}
    assert caller(event_with({"jwt": {"claims": claims}}), "cognito") == Identity("u-1", True)
    plain = {"jwt": {"claims": {"sub": "u-2", "cognito:groups": "[imgpipe-admins-not]"}}}
    assert caller(event_with(plain), "jwt") == Identity("u-2", False)
    iam = {"iam": {"userArn": "arn:aws:iam::123456789012:user/svc"}}
    assert caller(event_with(iam), "iam") == Identity("arn:aws:iam::123456789012:user/svc")
    assert caller({}, "none") == ANONYMOUS


@pytest.mark.parametrize("mode", ["cognito", "jwt", "iam"])
def test_no_authorizer_context_is_401_not_public(mode: str) -> None:
    with pytest.raises(UnauthorizedError):
        caller({"requestContext": {}}, mode)
    with pytest.raises(UnauthorizedError):
        caller(event_with({"jwt": {"claims": {"sub": ""}}}), mode)
