"""Resolve `hf.co/ORG/REPO[:QUANT]` to one GGUF file of a Hugging Face repository, the way Ollama does.

The repository's files are listed with the Hub's tree API; the quantization is picked by name. Only single-file
GGUFs are supported: split files (`-00001-of-00003.gguf`) and vision projectors (`mmproj`) are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from camelid import config
from camelid.store.download import TIMEOUT, USER_AGENT, DownloadError

DEFAULT_QUANT = "Q4_K_M"  # Ollama's choice when the reference names none
_PREFIXES = ("hf.co/", "huggingface.co/")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")
# A quantization as it appears in file names: Q4_K_M, IQ3_XXS, Q8_0, F16, BF16, ...
_QUANT_IN_NAME = re.compile(r"(?:^|[-._])((?:I?Q\d+(?:_[A-Z0-9]+)*)|BF16|F16|F32)(?=$|[-.])", re.IGNORECASE)


@dataclass(frozen=True)
class RemoteFile:
    """One file to download: where it is, its name, and the size and sha256 the Hub reports (None if not)."""

    url: str
    filename: str
    size: int | None
    sha256: str | None


def parse_hf_reference(reference: str) -> tuple[str, str, str | None]:
    """(org, repo, quant or None) of `hf.co/ORG/REPO[:QUANT]`; `huggingface.co/` and `https://` work too.

    `:latest` means no quantization named, as in Ollama.
    """
    rest = reference.strip()
    for scheme in ("https://", "http://"):
        if rest.lower().startswith(scheme):
            rest = rest[len(scheme):]
    for prefix in _PREFIXES:
        if rest.lower().startswith(prefix):
            rest = rest[len(prefix):]
            break
    else:
        raise DownloadError(f"{reference!r} is not a Hugging Face reference: expected hf.co/ORG/REPO[:QUANT]")
    name, _, quant = rest.partition(":")
    parts = name.strip("/").split("/")
    if len(parts) != 2 or not all(_NAME.match(part) and ".." not in part for part in parts):
        raise DownloadError(f"{reference!r} is not a valid Hugging Face reference: expected hf.co/ORG/REPO[:QUANT], "
                            "names of letters, digits, '.', '_' and '-'")
    quant = quant.strip()
    if quant and not re.fullmatch(r"[A-Za-z0-9._-]+", quant):
        raise DownloadError(f"{reference!r}: {quant!r} is not a valid quantization name")
    if quant.lower() == "latest":
        quant = ""
    return parts[0], parts[1], quant or None


def resolve_hf(reference: str, endpoint: str | None = None, client: httpx.Client | None = None) -> RemoteFile:
    """The GGUF file that `hf.co/ORG/REPO[:QUANT]` names, with its download URL, size and sha256.

    With no QUANT: the Q4_K_M file if there is one, else the repository's only GGUF. A QUANT matches a whole
    token of the file name, case-insensitively (`Q4_K` does not match `model-Q4_K_M.gguf`).
    """
    org, repo, quant = parse_hf_reference(reference)
    base = (endpoint if endpoint is not None else config.HF_ENDPOINT.get()).rstrip("/")
    files = _list_files(base, org, repo, client)
    chosen = _choose(files, f"hf.co/{org}/{repo}", quant)
    path = chosen["path"]
    lfs = chosen.get("lfs") if isinstance(chosen.get("lfs"), dict) else {}
    size = lfs.get("size", chosen.get("size"))
    oid = lfs.get("oid")
    sha256 = oid.lower() if isinstance(oid, str) and re.fullmatch(r"[0-9a-fA-F]{64}", oid) else None
    return RemoteFile(
        url=f"{base}/{org}/{repo}/resolve/main/{quote(path, safe='/')}",
        filename=path.rsplit("/", 1)[-1],
        size=size if isinstance(size, int) and size >= 0 else None,
        sha256=sha256,
    )


def _list_files(base: str, org: str, repo: str, client: httpx.Client | None) -> list[dict]:
    """Every file entry of the repository's main branch, following the Hub's pagination (Link: rel=next)."""
    own_client = client is None
    if client is None:
        client = httpx.Client(timeout=TIMEOUT, follow_redirects=True, headers={"User-Agent": USER_AGENT})
    url: str | None = f"{base}/api/models/{org}/{repo}/tree/main?recursive=true"
    entries: list[dict] = []
    try:
        while url:
            try:
                response = client.get(url, headers={"User-Agent": USER_AGENT}, follow_redirects=True)
            except httpx.HTTPError as exc:
                raise DownloadError(f"cannot reach {base} to list hf.co/{org}/{repo}: {exc}") from None
            if response.status_code in (401, 404):
                # The Hub answers 401 for a repository that does not exist as well as for a private one.
                raise DownloadError(f"Hugging Face repository {org}/{repo} not found at {base} "
                                    f"(HTTP {response.status_code}): check the name; private repos are not supported")
            if response.status_code == 403:
                raise DownloadError(f"access to Hugging Face repository {org}/{repo} is restricted (HTTP 403): "
                                    "gated repositories are not supported yet")
            if response.status_code != 200:
                raise DownloadError(f"listing hf.co/{org}/{repo} failed: HTTP {response.status_code} "
                                    f"{response.reason_phrase}".rstrip())
            try:
                page = response.json()
            except ValueError:
                page = None
            if not isinstance(page, list):
                raise DownloadError(f"listing hf.co/{org}/{repo} failed: {base} did not answer with a file list")
            entries += [e for e in page if isinstance(e, dict) and e.get("type") == "file"
                        and isinstance(e.get("path"), str)]
            next_link = response.links.get("next", {}).get("url")
            url = str(response.url.join(next_link)) if next_link else None
    finally:
        if own_client:
            client.close()
    return entries


def _stem(entry: dict) -> str:
    name = entry["path"].rsplit("/", 1)[-1]
    return name[: -len(".gguf")]


def _quant_of(entry: dict) -> str:
    """The quantization a file name carries (upper case), else the file name itself."""
    found = _QUANT_IN_NAME.findall(_stem(_unsharded(entry)))
    return found[-1].upper() if found else entry["path"].rsplit("/", 1)[-1]


def _unsharded(entry: dict) -> dict:
    return {**entry, "path": _SHARD.sub("", entry["path"][: -len(".gguf")]) + ".gguf"}


def _matches(entry: dict, quant: str) -> bool:
    # Before the quant: start or a separator; after it: end or '-'/'.', so Q4_K stops short of Q4_K_M.
    return re.search(rf"(?:^|[-._]){re.escape(quant)}(?=$|[-.])", _stem(entry), re.IGNORECASE) is not None


def _available(entries: list[dict]) -> str:
    return ", ".join(sorted({_quant_of(e) for e in entries})) or "none"


def _choose(files: list[dict], name: str, quant: str | None) -> dict:
    ggufs = [f for f in files if f["path"].lower().endswith(".gguf")
             and "mmproj" not in f["path"].rsplit("/", 1)[-1].lower()]
    if not ggufs:
        raise DownloadError(f"{name} has no GGUF file: camelid runs GGUF models only")
    singles = [f for f in ggufs if not _SHARD.search(_stem(f))]
    shards = [f for f in ggufs if _SHARD.search(_stem(f))]

    def split_error(parts: list[dict]) -> DownloadError:
        return DownloadError(f"{name}{':' + quant if quant else ''} is only available as split GGUF files "
                             f"({len(parts)} files): split GGUF files are not supported yet")

    def available() -> str:
        listed = _available(singles)
        return listed + (f" (split, not supported yet: {_available(shards)})" if shards else "")

    wanted = quant or DEFAULT_QUANT
    found = [f for f in singles if _matches(f, wanted)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        paths = ", ".join(f["path"] for f in found)
        raise DownloadError(f"{name}:{wanted} is ambiguous: several GGUF files match ({paths})")
    if quant:
        split = [f for f in shards if _matches(f, quant)]
        if split:
            raise split_error(split)
        raise DownloadError(f"{name} has no {quant} GGUF file; available quantizations: {available()}")
    if len(singles) == 1:
        return singles[0]
    if not singles:
        raise split_error(shards)
    raise DownloadError(f"{name} has several GGUF files and none is {DEFAULT_QUANT}: pick one with "
                        f"{name}:QUANT, one of: {available()}")
