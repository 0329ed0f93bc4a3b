"""A dual-era MCP server on the Python SDK (`MCPServer`): it answers `server/discover` and
per-request `_meta` (2026-07-28) as well as `initialize` (legacy), over stdio or Streamable
HTTP.

Usage: modern_server.py [--http]   (HTTP: prints `listening on 127.0.0.1:PORT`)

Tools:
    echo {text}          answers `echo: TEXT`
    get_secret {}        answers `the secret`
    delete_all {what}    answers `deleted WHAT` (destructive)
    change_tools {}      adds a tool `added_N` and announces the change
    ask_name {}          2026-07-28 multi round trip: asks the client for a name
                         (elicitation) with `input_required`, then answers `hello NAME`
    route {region, count, dry}   arguments marked `x-mcp-header` (Region, Count, Dry-Run):
                         answers `routed REGION xCOUNT dry=DRY`
    ask_twice {}         two rounds: asks for a name (elicitation), then for a sample
                         (sampling), then answers `NAME got: SAMPLED TEXT`
    touch {uri}          announces an update of the resource `uri` (memo://open,
                         memo://note, memo://secret) to `subscriptions/listen` streams
"""

from __future__ import annotations

import os
import socket
import sys

from typing import Annotated

import anyio
from mcp import types
from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

server = MCPServer("mcpgate-modern-fixture")
added: list[str] = []


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return f"echo: {text}"


@server.tool()
def get_secret() -> str:
    """A tool the policy hides."""
    return "the secret"


@server.tool(annotations=types.ToolAnnotations(destructive_hint=True))
def delete_all(what: str) -> str:
    """A tool the policy denies for `everything`."""
    return f"deleted {what}"


@server.tool()
async def change_tools(ctx: Context) -> str:
    """Adds a tool and announces the change."""
    name = f"added_{len(added) + 1}"
    added.append(name)

    def extra() -> str:
        return name

    server.add_tool(extra, name=name, description="added at run time")
    await ctx.notify_tools_changed()
    return f"added {name}"


@server.tool()
async def ask_name(ctx: Context) -> str | types.InputRequiredResult:
    """Asks the client for a name, then greets it."""
    answers = ctx.input_responses or {}
    answer = answers.get("name")
    if answer is not None:
        content = getattr(answer, "content", None) or {}
        return f"hello {content.get('name', '?')}"
    return ask_for_name()


def ask_for_name() -> types.InputRequiredResult:
    """The elicitation round of `ask_name` and `ask_twice`."""
    return types.InputRequiredResult(
        input_requests={
            "name": types.ElicitRequest(
                params=types.ElicitRequestFormParams(
                    message="What is your name?",
                    requested_schema={
                        "type": "object",
                        "properties": {"name": {"type": "string"}},
                        "required": ["name"],
                    },
                )
            )
        },
        request_state="asked-for-name",
    )


@server.tool()
def route(
    region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})],
    count: Annotated[int, Field(json_schema_extra={"x-mcp-header": "Count"})] = 1,
    dry: Annotated[bool, Field(json_schema_extra={"x-mcp-header": "Dry-Run"})] = False,
) -> str:
    """Arguments mirrored in `Mcp-Param-*` headers (`x-mcp-header`)."""
    return f"routed {region} x{count} dry={str(dry).lower()}"


@server.tool()
async def ask_twice(ctx: Context) -> str | types.InputRequiredResult:
    """Asks for a name, then for a sample, in two rounds."""
    answers = ctx.input_responses or {}
    name = getattr(answers.get("name"), "content", None)
    sample = answers.get("sample")
    state = ctx.request_state or ""
    if state.startswith("asked-for-sample:") and sample is not None:
        text = getattr(getattr(sample, "content", None), "text", "?")
        return f"{state.removeprefix('asked-for-sample:')} got: {text}"
    if name is not None:
        return types.InputRequiredResult(
            input_requests={
                "sample": types.CreateMessageRequest(
                    params=types.CreateMessageRequestParams(
                        messages=[
                            types.SamplingMessage(
                                role="user",
                                content=types.TextContent(type="text", text=f"greet {name.get('name')}"),
                            )
                        ],
                        max_tokens=20,
                    )
                )
            },
            request_state=f"asked-for-sample:{name.get('name')}",
        )
    return ask_for_name()


async def serve_http() -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = server.streamable_http_app(host="127.0.0.1")
    # TLS_CERT / TLS_KEY (PEM files) serve https, for tests of private CAs.
    tls = {}
    if os.environ.get("TLS_CERT"):
        tls = {"ssl_certfile": os.environ["TLS_CERT"], "ssl_keyfile": os.environ["TLS_KEY"]}
    config = uvicorn.Config(app, log_level="warning", **tls)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    await uvicorn.Server(config).serve(sockets=[sock])


@server.resource("memo://open")
def memo_open() -> str:
    """A resource the test policy lets everyone read."""
    return "open memo"


@server.resource("memo://note")
def memo_note() -> str:
    """A second readable resource."""
    return "a note"


@server.resource("memo://secret")
def memo_secret() -> str:
    """A resource the test policy denies."""
    return "secret memo"


@server.tool()
async def touch(uri: str, ctx: Context) -> str:
    """Announces an update of the resource `uri` to its subscribers."""
    await ctx.notify_resource_updated(uri)
    return f"touched {uri}"


if __name__ == "__main__":
    if "--http" in sys.argv[1:]:
        anyio.run(serve_http)
    else:
        server.run("stdio")
