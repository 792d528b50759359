"""An image's visible status on the embedded stack, through the HTTP API as a client sees it:
uploaded, then PENDING while it waits, then PROCESSED with a placeholder and a colour, its
renditions served by the local CDN. (Overwrites and deletes: the lifecycle half of issue 16.)
"""

import base64
import io
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
import requests
from aws_helpers import apply_client_env
from local_stack_helpers import imgpipe_up
from PIL import Image

from loadtest.synthetic import photo_like_bytes

KEY = "uploads/e2e/pending photo+1.jpg"


def get_image(url: str, image_id: str, token: str) -> tuple[int, Any]:
    """GET /images as a signed-in caller (the key names no owner, so an admin reads it)."""
    response = requests.get(f"{url}/images/{quote(image_id, safe='/')}", timeout=10,
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    return response.status_code, response.json()


def test_upload_then_pending_then_processed_with_a_placeholder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One injected 503 on this key's GetObject keeps it waiting for a visibility timeout (3 s),
    # so PENDING is seen every time, not only when the poll wins a race with the worker.
    chaos = tmp_path / "chaos"
    chaos.mkdir()
    (chaos / "one-failure").write_text("")
    env = {"IMGPIPE_CHAOS_DIR": str(chaos), "IMGPIPE_CHAOS_KEY": KEY, "AWS_MAX_ATTEMPTS": "1"}
    with imgpipe_up(["--workers", "1", "--visibility-timeout", "3"], env) as stack:
        apply_client_env(monkeypatch, {**stack.client_env(), "AWS_SESSION_TOKEN": None})
        image_id = f"{stack.raw_bucket}/{KEY}"
        token = stack.info["users"]["admin"]["token"]
        data = photo_like_bytes(900, 600, seed=16)
        put_at = time.monotonic()
        boto3.client("s3").put_object(Bucket=stack.raw_bucket, Key=KEY, Body=data)

        status, waiting = get_image(stack.url, image_id, token)
        assert time.monotonic() - put_at < 3, "too slow to be sure of the wait"
        assert status == 200, waiting
        assert (status, waiting["status"], waiting["size"]) == (200, "PENDING", len(data))
        assert get_image(stack.url, f"{stack.raw_bucket}/uploads/e2e/nothing.jpg", token)[0] == 404

        deadline = time.monotonic() + 60
        while waiting["status"] == "PENDING" and time.monotonic() < deadline:
            time.sleep(0.3)
            status, waiting = get_image(stack.url, image_id, token)
        item = waiting
        assert (status, item["status"]) == (200, "PROCESSED"), "".join(stack.log[-40:])
        assert item["attempts"] == 2 and list(chaos.iterdir()) == []
        assert len(base64.b64decode(item["placeholder"])) <= 25
        assert re.fullmatch(r"#[0-9a-f]{6}", item["color"])
        thumb = next(r for r in item["renditions"] if r["name"] == "thumb")
        assert thumb["url"].startswith(f"{stack.url}/cdn/")
        served = requests.get(thumb["url"], timeout=10)
        assert served.status_code == 200
        with Image.open(io.BytesIO(served.content)) as image:
            assert image.size == (200, 200)
