"""What the HTTP API's handlers share: the resolver with its access-denied answer, the JSON
body of a request, and rendition URLs.

CORS is API Gateway's (the template's CorsConfiguration): it ignores an integration's own
CORS headers, so the handlers send none.
"""

from typing import Any, NoReturn
from urllib.parse import quote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, ForbiddenError

from core.errors import AccessDenied
from handlers.responsive import with_auto_urls
from handlers.runtime import Runtime


def new_app(function: str) -> APIGatewayHttpResolver:
    """A resolver whose AccessDenied (IAM refused one of ``function``'s calls) is a 403 that
    names the function, not a 500."""
    app = APIGatewayHttpResolver()

    def access_denied(exc: AccessDenied) -> NoReturn:
        raise ForbiddenError(f"{function} was denied {exc}") from exc

    app.exception_handler(AccessDenied)(access_denied)  # registered by call: it is untyped
    return app


def json_body(app: APIGatewayHttpResolver) -> dict[str, Any]:
    """The current request's body as a JSON object, or a 400."""
    try:
        body = app.current_event.json_body
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


def with_urls(item: dict[str, Any], rt: Runtime) -> dict[str, Any]:
    """Rendition URLs: the CloudFront domain when configured, presigned GETs otherwise. Keys
    are percent-encoded: ``+ % # ?`` and spaces are legal in keys, not in URL paths. Behind
    the CDN, names stored in AVIF, WebP and JPEG also get ``.auto`` URLs and a ``srcset``."""
    settings = rt.settings

    def cdn_url(key: str) -> str:
        return f"{settings.cdn_url}/{quote(key, safe='/')}"

    for rendition in item.get("renditions", []):
        if settings.cdn_domain:
            rendition["url"] = cdn_url(rendition["key"])
        else:
            rendition["url"] = rt.storage.presigned_get(settings.output_bucket, rendition["key"])
    # ".auto" is negotiated by the CDN's function: there is nothing to presign without one.
    return with_auto_urls(item, cdn_url) if settings.cdn_domain else item
