"""A minimal legacy MCP server on stdio that never answers a method it does not know (as
some hand-written servers do), and appends the method of every message it receives to a
file, one per line.

Usage: silent_legacy_server.py METHODS_FILE

Speaks `initialize` (protocol 2025-06-18), `tools/list` and `tools/call` of one tool:
    echo {text}   answers `echo: TEXT`
"""

from __future__ import annotations

import json
import sys

TOOLS = [
    {
        "name": "echo",
        "description": "Echo the text back.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
    }
]


def answer(message_id: object, result: dict) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": message_id, "result": result}) + "\n")
    sys.stdout.flush()


def main() -> None:
    log = sys.argv[1]
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        method = message.get("method")
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{method}\n")
        if "id" not in message:
            continue
        if method == "initialize":
            answer(
                message["id"],
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "silent-legacy", "version": "1"},
                },
            )
        elif method == "tools/list":
            answer(message["id"], {"tools": TOOLS})
        elif method == "tools/call":
            text = (message.get("params") or {}).get("arguments", {}).get("text", "")
            answer(message["id"], {"content": [{"type": "text", "text": f"echo: {text}"}]})
        # Anything else (`server/discover`, `ping`, ...) gets no answer at all.


if __name__ == "__main__":
    main()
