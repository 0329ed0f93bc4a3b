"""A stdio MCP server (legacy protocol, standard library only) for behaviours the reference
servers lack: a paginated tools/list, tools/list_changed, and upstream failures.

Flags:
    --page-size N   tools per tools/list page (default 3)

Tools:
    list_items, get_item, get_config, get_user, list_users, search_items, create_item,
    delete_item, admin_reset   echo their name and arguments as text
    change_tools     adds a tool `added_N`, answers, then sends notifications/tools/list_changed
    crash            exits the process without answering
    garbage          answers with a line that is not JSON, then exits
    silent           never answers
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading

PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
BASE_TOOLS = [
    "list_items",
    "get_item",
    "get_config",
    "get_user",
    "list_users",
    "search_items",
    "create_item",
    "delete_item",
    "admin_reset",
    "change_tools",
    "crash",
    "garbage",
    "silent",
]

out_lock = threading.Lock()
tools = list(BASE_TOOLS)
page_size = 3


def send(message: dict) -> None:
    with out_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def tool_def(name: str) -> dict:
    return {
        "name": name,
        "description": f"fixture tool {name}",
        "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}},
        "annotations": {"readOnlyHint": name.startswith(("get_", "list_", "search_"))},
    }


def list_tools(params: dict) -> dict:
    cursor = params.get("cursor")
    start = 0
    if cursor is not None:
        try:
            start = int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("offset:"))
        except ValueError as e:
            raise InvalidParams(f"bad cursor: {e}") from e
    page = tools[start : start + page_size]
    result: dict = {"tools": [tool_def(n) for n in page]}
    if start + page_size < len(tools):
        result["nextCursor"] = base64.urlsafe_b64encode(f"offset:{start + page_size}".encode()).decode()
    return result


class InvalidParams(Exception):
    pass


def call_tool(request_id, params: dict) -> dict | None:
    name = params.get("name")
    args = params.get("arguments") or {}
    if name not in tools:
        raise InvalidParams(f"unknown tool: {name}")
    if name == "crash":
        os._exit(3)
    if name == "garbage":
        with out_lock:
            sys.stdout.write("this is not json {\n")
            sys.stdout.flush()
        os._exit(4)
    if name == "silent":
        return None
    if name == "change_tools":
        added = f"added_{len(tools) - len(BASE_TOOLS) + 1}"
        tools.append(added)
        # After the response, so that it travels on the session's own stream.
        timer = threading.Timer(0.2, send, args=({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"},))
        timer.start()
        text = f"added {added}"
    else:
        text = f"{name} called with {json.dumps(args, sort_keys=True)}"
    return {"content": [{"type": "text", "text": text}], "isError": False}


def handle(message: dict) -> None:
    method = message.get("method")
    request_id = message.get("id")
    if method is None or request_id is None:
        return  # responses and notifications need no answer
    params = message.get("params") or {}
    try:
        if method == "initialize":
            asked = params.get("protocolVersion")
            result = {
                "protocolVersion": asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0],
                "capabilities": {"tools": {"listChanged": True}},
                "serverInfo": {"name": "mcpgate-fixture", "version": "1.0.0"},
            }
        elif method == "ping":
            result = {}
        elif method == "tools/list":
            result = list_tools(params)
        elif method == "tools/call":
            result = call_tool(request_id, params)
            if result is None:
                return
        else:
            send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": f"method not found: {method}"}})
            return
    except InvalidParams as e:
        send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": str(e)}})
        return
    send({"jsonrpc": "2.0", "id": request_id, "result": result})


def main() -> None:
    global page_size
    argv = sys.argv[1:]
    if "--page-size" in argv:
        page_size = int(argv[argv.index("--page-size") + 1])
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}})
            continue
        if isinstance(message, dict):
            handle(message)


if __name__ == "__main__":
    main()
