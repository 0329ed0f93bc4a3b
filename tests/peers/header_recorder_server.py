"""An MCP server (the Python SDK's MCPServer) that records what reaches it, to check what the
gateway forwards upstream: the credentials it injects, and nothing a client should not pass.

Usage:
    header_recorder_server.py --http RECORD_FILE   Streamable HTTP on 127.0.0.1, a free port;
                                                    prints `recorder listening on 127.0.0.1:PORT`
    header_recorder_server.py --http-json RECORD_FILE  the same, answering each request with
                                                    one JSON body instead of an event stream
    header_recorder_server.py --stdio RECORD_FILE  stdio

Every HTTP request is appended to RECORD_FILE as one JSON line:
    {"method": "POST", "path": "/mcp", "headers": {"authorization": "...", ...}, "body": "..."}
Every tool call is appended as {"tool": NAME, "arguments": {...}} (both transports).

Tools:
    whoami           answers `ok`
    get_me           answers `ok` (named as GitHub's server names it, for the README's walkthrough)
    danger           {"force": bool}: answers `ran` (tests deny it when forced)
    echo             {"text": T}: answers T
    env_digest       {"name": NAME}: whether the variable is set, and the SHA-256 of its value
                     (never the value)
    env_names        {"prefix": P}: names of the variables that start with P
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer

record_file = ""


def record(entry: dict[str, Any]) -> None:
    with open(record_file, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


server = MCPServer("header-recorder")


@server.tool()
def whoami() -> str:
    """Answers ok."""
    record({"tool": "whoami", "arguments": {}})
    return "ok"


@server.tool()
def get_me() -> str:
    """Answers ok."""
    record({"tool": "get_me", "arguments": {}})
    return "ok"


@server.tool()
def danger(force: bool = False) -> str:
    """A tool the policy denies when forced."""
    record({"tool": "danger", "arguments": {"force": force}})
    return "ran"


@server.tool()
def echo(text: str) -> str:
    """Answers the text."""
    record({"tool": "echo", "arguments": {"text": text}})
    return text


@server.tool()
def env_digest(name: str) -> str:
    """Whether an environment variable is set, and the SHA-256 of its value."""
    record({"tool": "env_digest", "arguments": {"name": name}})
    value = os.environ.get(name)
    digest = hashlib.sha256(value.encode()).hexdigest() if value is not None else None
    return json.dumps({"set": value is not None, "sha256": digest})


@server.tool()
def env_names(prefix: str) -> str:
    """Names of the environment variables that start with a prefix."""
    record({"tool": "env_names", "arguments": {"prefix": prefix}})
    return json.dumps(sorted(n for n in os.environ if n.startswith(prefix)))


class Recorder:
    """ASGI middleware: writes each HTTP request's headers and body, then runs the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[dict] = []
        body = b""
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = headers[key] + ", " + text if key in headers else text
        record(
            {
                "method": scope["method"],
                "path": scope["path"],
                "headers": headers,
                "body": body.decode("utf-8", "replace"),
            }
        )

        async def replay() -> dict:
            if chunks:
                return chunks.pop(0)
            return await receive()

        await self.app(scope, replay, send)


async def serve_http(json_response: bool) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    app = Recorder(server.streamable_http_app(json_response=json_response))
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    # Listening already: connections wait in the backlog until uvicorn accepts them.
    print(f"recorder listening on 127.0.0.1:{port}", flush=True)
    await uvicorn.Server(config).serve(sockets=[sock])


def main() -> None:
    global record_file
    if len(sys.argv) != 3 or sys.argv[1] not in ("--http", "--http-json", "--stdio"):
        sys.exit(__doc__)
    record_file = sys.argv[2]
    if sys.argv[1] != "--stdio":
        asyncio.run(serve_http(sys.argv[1] == "--http-json"))
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
