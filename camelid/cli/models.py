"""The model library commands: pull, list/ls, show, create, cp, rm, import. None of them loads torch."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from camelid.errors import BadRequest


def add_parser(sub: Any) -> None:
    p = sub.add_parser("pull", help="fetch a model into the library",
                       description="Pull a model: a catalog name (smollm2:135m, gemma3:270m, whisper:tiny.en, "
                                   "whisper:base), hf.co/ORG/REPO[:QUANT], or an https URL of a .gguf file "
                                   "(append #sha256=<hex> to pin it). An interrupted pull resumes.")
    p.add_argument("model")
    p.add_argument("--name", help="store a URL download under this name")
    p.set_defaults(handler=pull_command)

    for command in ("list", "ls"):
        p = sub.add_parser(command, help="list the models in the library" if command == "list" else None)
        p.add_argument("--json", action="store_true", help="one JSON object per model")
        p.set_defaults(handler=list_command)

    p = sub.add_parser("show", help="show a model's facts, parameters, template, license",
                       description="Show information about a model (architecture, parameters, context length, "
                                   "embedding length, quantization, capabilities, parameters, system, license).")
    p.add_argument("model")
    for flag in ("license", "modelfile", "parameters", "template", "system"):
        p.add_argument(f"--{flag}", action="store_true", help=f"print only the {flag}")
    p.add_argument("-v", "--verbose", action="store_true", help="also print the GGUF metadata")
    p.add_argument("--json", action="store_true", help="everything as one JSON object")
    p.set_defaults(handler=show_command)

    p = sub.add_parser("create", help="create a model from a Modelfile")
    p.add_argument("model")
    p.add_argument("-f", "--file", default="Modelfile", help="the Modelfile (default ./Modelfile)")
    p.set_defaults(handler=create_command)

    p = sub.add_parser("cp", help="copy a model under a new name")
    p.add_argument("source")
    p.add_argument("destination")
    p.set_defaults(handler=copy_command)

    p = sub.add_parser("rm", help="remove models from the library")
    p.add_argument("models", nargs="+")
    p.set_defaults(handler=remove_command)

    p = sub.add_parser("import", help="bring in the models of an existing Ollama store",
                       description="Import every model of an Ollama store (default $OLLAMA_MODELS or "
                                   "~/.ollama/models), keeping digests; blobs are hard-linked when possible.")
    p.add_argument("--ollama", nargs="?", const="", metavar="DIR", required=True)
    p.set_defaults(handler=import_command)


def pull_command(args: argparse.Namespace) -> int:
    from camelid.cli.progress import PullProgress
    from camelid.store.pull import pull

    with PullProgress() as progress:
        pull(args.model, report=progress, name=args.name)
    return 0


def human_time(seconds_ago: float) -> str:
    """Ollama's format.HumanTime, roughly: "2 minutes ago", "About an hour ago"."""
    s = max(0.0, seconds_ago)
    if s < 1:
        return "Less than a second ago"
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400), ("day", 86400),
                       ("hour", 3600), ("minute", 60), ("second", 1)):
        if s >= size:
            n = int(s // size)
            if n == 1:
                return f"About {'an' if unit == 'hour' else 'a'} {unit} ago"
            return f"{n} {unit}s ago"
    return "Less than a second ago"


def list_command(args: argparse.Namespace) -> int:
    from camelid.cli.progress import human_bytes
    from camelid.store.blobs import ModelStore

    entries = ModelStore().entries()
    if args.json:
        for e in entries:
            print(json.dumps({"name": str(e.name), "id": e.manifest_digest[:12], "digest": e.manifest_digest,
                              "size": e.manifest.total_size,
                              "modified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(e.modified))}))
        return 0
    rows = [("NAME", "ID", "SIZE", "MODIFIED")] + [
        (str(e.name), e.manifest_digest[:12], human_bytes(e.manifest.total_size), human_time(time.time() - e.modified))
        for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("    ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def show_command(args: argparse.Namespace) -> int:
    from camelid.store.resolve import resolve
    from camelid.store.show import show

    facts = show(resolve(args.model, pull_missing=False))
    if args.json:
        print(json.dumps(facts, indent=2, default=str))
        return 0
    for flag in ("license", "modelfile", "parameters", "template", "system"):
        if getattr(args, flag):
            print(facts[flag])
            return 0
    print(render_show(facts, verbose=args.verbose))
    return 0


def render_show(facts: dict[str, Any], verbose: bool = False) -> str:
    """The sections `ollama show` prints."""
    lines: list[str] = []

    def section(title: str, rows: list[tuple[str, str]]) -> None:
        if rows:
            lines.append(f"  {title}")
            width = max(len(k) for k, _ in rows)
            lines.extend(f"    {k.ljust(width)}    {v}".rstrip() for k, v in rows)
            lines.append("")

    info = facts.get("info") or {}
    if info:
        section("Model", [("architecture", str(info["architecture"])), ("parameters", str(info["parameters"])),
                          ("context length", str(info["context_length"])),
                          ("embedding length", str(info["embedding_length"])),
                          ("quantization", str(info["quantization"]))])
    else:
        section("Model", [("format", facts["details"]["format"]), ("family", facts["details"]["family"])]
                + [("file", name) for name in facts["files"]])
    section("Capabilities", [(c, "") for c in facts["capabilities"]])
    if facts["parameters"]:
        section("Parameters", [tuple(line.split(None, 1)) + ("",) * (1 - line.count(" ") > 0)  # type: ignore[misc]
                               for line in facts["parameters"].splitlines()])
    if facts["system"]:
        section("System", [(line, "") for line in facts["system"].strip().splitlines()[:6]])
    if facts["license"]:
        section("License", [(line.strip(), "") for line in facts["license"].strip().splitlines()[:2]])
    if verbose and facts["model_info"]:
        section("Metadata", [(k, str(v)[:80]) for k, v in sorted(facts["model_info"].items())])
    return "\n".join(lines).rstrip() + "\n"


def create_command(args: argparse.Namespace) -> int:
    from camelid.store.create import create

    path = Path(args.file).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BadRequest(f"cannot read Modelfile {path}: {getattr(err, 'strerror', None) or err}") from None
    create(args.model, text, base_dir=path.resolve().parent, status=lambda s: print(s, file=sys.stderr))
    return 0


def copy_command(args: argparse.Namespace) -> int:
    from camelid.store.create import copy

    copy(args.source, args.destination)
    print(f"copied '{args.source}' to '{args.destination}'")
    return 0


def remove_command(args: argparse.Namespace) -> int:
    from camelid.store.blobs import ModelStore
    from camelid.store.names import ModelName

    store = ModelStore()
    for model in args.models:
        store.remove(ModelName.parse(model))
        print(f"deleted '{model}'")
    return 0


def import_command(args: argparse.Namespace) -> int:
    from camelid import config
    from camelid.store.create import import_ollama

    folder = Path(args.ollama or config.OLLAMA_MODELS.get())
    names = import_ollama(folder, status=lambda s: print(s, file=sys.stderr))
    print(f"imported {len(names)} model(s) from {folder}")
    return 0
