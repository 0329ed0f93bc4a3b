"""An MCP server (the Python SDK, Streamable HTTP) that runs a tool call only when it carries
a valid mcpgate assertion: defense in depth behind the gateway. A call is refused when its
assertion is missing, not signed by a key of the gateway's JWKS, expired, for another
audience, for another tool, replayed, or when the SHA-256 of its arguments' canonical JSON
differs from the assertion's `args_sha256` (the arguments were changed on the way).

Usage:
    server.py --jwks URL_OR_FILE [--audience AUD] [--header NAME] [--log FILE] [--port N]

    --jwks      the gateway's key set: `http://GATEWAY/.well-known/jwks.json`, or a file
                holding that document (read again on every call)
    --audience  the `aud` to accept (default: this server's own URL, `http://127.0.0.1:PORT/mcp`,
                which is what the gateway sends when its config names no `audience`)
    --header    the header the gateway puts it in (default `X-Mcpgate-Assertion`)
    --log       append one JSON line per checked call: tool, accepted, reason, sub,
                on_behalf_of, jti (never the assertion itself)
    --port      the port on 127.0.0.1 (default: a free one); prints
                `verifier listening on 127.0.0.1:PORT`

Tools: `whoami` (answers `ok`) and `echo` ({"text": ...}: answers the text).
Needs: `mcp` and `PyJWT[crypto]` (both in tests/peers/requirements.txt).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
from typing import Any

import jwt
from mcp.server.mcpserver import MCPServer

server = MCPServer("assertion-verifier")


@server.tool()
def whoami() -> str:
    """Answers ok."""
    return "ok"


@server.tool()
def echo(text: str) -> str:
    """Answers the text."""
    return text


def args_sha256(arguments: Any) -> str:
    """SHA-256 of the arguments' canonical JSON, as mcpgate computes it (docs/assertions.md)."""
    canonical = json.dumps(
        arguments if arguments is not None else {},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Keys:
    """The gateway's public keys, from a URL (cached by PyJWT) or a file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.client = jwt.PyJWKClient(source) if source.startswith(("http://", "https://")) else None

    def for_token(self, token: str) -> Any:
        if self.client is not None:
            return self.client.get_signing_key_from_jwt(token).key
        with open(self.source, encoding="utf-8") as f:
            keys = jwt.PyJWKSet.from_dict(json.load(f))
        kid = jwt.get_unverified_header(token).get("kid")
        for key in keys.keys:
            if key.key_id == kid:
                return key.key
        raise jwt.InvalidTokenError(f"no key `{kid}` in the key set")


class Verifier:
    """ASGI middleware: checks the assertion of every `tools/call` before the server sees it."""

    def __init__(self, app: Any, keys: Keys, audience: str, header: str, log: str | None) -> None:
        self.app = app
        self.keys = keys
        self.audience = audience
        self.header = header.lower().encode("latin-1")
        self.log = log
        self.seen: set[str] = set()

    def check(self, token: str | None, call: dict) -> tuple[str | None, dict]:
        """The reason to refuse (None: accept) and the claims read."""
        if not token:
            return "missing assertion", {}
        try:
            claims = jwt.decode(
                token,
                self.keys.for_token(token),
                algorithms=["EdDSA"],
                audience=self.audience,
                issuer="mcpgate",
                options={"require": ["exp", "iat", "aud", "iss", "jti", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            return "expired assertion", {}
        except jwt.InvalidAudienceError:
            return "assertion for another audience", {}
        except jwt.InvalidSignatureError:
            return "bad assertion signature", {}
        except (jwt.PyJWKClientError, jwt.InvalidTokenError, OSError, ValueError) as e:
            return f"invalid assertion: {e}", {}
        params = call.get("params") or {}
        if claims.get("tool") != params.get("name"):
            return "assertion for another tool", claims
        if claims.get("args_sha256") != args_sha256(params.get("arguments")):
            return "arguments do not match the assertion", claims
        if claims["jti"] in self.seen:
            return "replayed assertion", claims
        self.seen.add(claims["jti"])
        return None, claims

    def record(self, call: dict, reason: str | None, claims: dict) -> None:
        if not self.log:
            return
        entry = {
            "tool": (call.get("params") or {}).get("name"),
            "accepted": reason is None,
            "reason": reason,
            "sub": claims.get("sub"),
            "on_behalf_of": claims.get("on_behalf_of"),
            "jti": claims.get("jti"),
        }
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
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
        try:
            call = json.loads(body)
        except ValueError:
            call = None
        if isinstance(call, dict) and call.get("method") == "tools/call":
            token = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k.lower() == self.header),
                None,
            )
            reason, claims = self.check(token, call)
            self.record(call, reason, claims)
            if reason is not None:
                await refuse(send, call.get("id"), reason)
                return

        async def replay() -> dict:
            if chunks:
                return chunks.pop(0)
            return await receive()

        await self.app(scope, replay, send)


async def refuse(send: Any, request_id: Any, reason: str) -> None:
    """Answers the call with a JSON-RPC error naming the reason."""
    body = json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32001, "message": f"refused: {reason}"}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def serve(args: argparse.Namespace) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    audience = args.audience or f"http://127.0.0.1:{port}/mcp"
    app = Verifier(server.streamable_http_app(), Keys(args.jwks), audience, args.header, args.log)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    print(f"verifier listening on 127.0.0.1:{port}", flush=True)
    await uvicorn.Server(config).serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jwks", required=True)
    parser.add_argument("--audience")
    parser.add_argument("--header", default="X-Mcpgate-Assertion")
    parser.add_argument("--log")
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
