"""The few exception types a user can see. Each carries one clear, human message."""


class CamelidError(Exception):
    """Base class: the CLI prints ``str(err)`` on one line and exits 1."""


class BadModelFile(CamelidError):
    """The file is not a GGUF we can read: wrong magic, truncated, inconsistent counts or offsets."""


class UnsupportedModel(CamelidError):
    """The GGUF is valid but uses an architecture, tokenizer or tensor type camelid does not support."""


class UnknownModel(CamelidError):
    """A model name that resolves to nothing (and is not a path to an existing file)."""


class BadRequest(CamelidError):
    """Invalid options or input: unknown option, prompt longer than the context, bad chat message."""


class RequestTooLarge(BadRequest):
    """A request body over the server's limit (CAMELID_MAX_REQUEST_MB): HTTP 413."""
