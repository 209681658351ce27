"""`camelid serve`: the Ollama- and OpenAI-compatible server (uvicorn) at CAMELID_HOST."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="start the API server (Ollama and OpenAI APIs, web chat page)",
                       description="Serve the Ollama API, the OpenAI API and a web chat page at CAMELID_HOST "
                                   "(default 127.0.0.1:11434). Models load on demand.")
    p.add_argument("--host", help="override CAMELID_HOST, e.g. 0.0.0.0:11434")
    p.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from camelid import config
    from camelid.server.app import create_app

    if args.host:
        os.environ[config.CAMELID_HOST.name] = args.host
    host, port = config.host_and_port()
    print(f"camelid is serving on http://{host}:{port}", file=sys.stderr, flush=True)
    uvicorn.run(create_app(), host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    return 0
