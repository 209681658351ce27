"""How camelid's errors become HTTP statuses (Ollama's: 400 bad request, 404 unknown model, 503 busy)."""

from __future__ import annotations

from camelid.errors import (
    BadModelFile,
    BadRequest,
    CamelidError,
    RequestTooLarge,
    UnknownModel,
    UnsupportedModel,
)


def error_status(err: Exception) -> int:
    from camelid.scheduler import QueueFull

    if isinstance(err, QueueFull):
        return 503
    if isinstance(err, UnknownModel):
        return 404
    if isinstance(err, RequestTooLarge):
        return 413
    if isinstance(err, BadRequest | UnsupportedModel | BadModelFile):
        return 400
    if isinstance(err, CamelidError):
        return 500
    return 500
