"""Drives the Python MCP SDK client through a scripted session and prints what happened as JSON.

Usage: client.py SCENARIO_JSON (or the scenario on stdin when the argument is `-`).

The scenario:

    {
      "target": {"url": "http://127.0.0.1:PORT/mcp/demo", "headers": {...}}
             | {"command": "/path/node", "args": [...], "env": {...}},
      "mode": "legacy",                      # or "auto"
      "steps": [
        {"op": "list_tools"},                # every page, following nextCursor
        {"op": "list_tools_page", "cursor": null},
        {"op": "call_tool", "name": "echo", "arguments": {...}, "progress": true},
        {"op": "list_prompts"}, {"op": "list_resources"},
        {"op": "read_resource", "uri": "..."},
        {"op": "wait_notification", "method": "notifications/tools/list_changed",
         "timeout": 10},
        {"op": "sleep", "seconds": 0.5},
        {"op": "listen_call", "name": "change_tools", "arguments": {}, "timeout": 10},
        {"op": "subscribe_resource", "uri": "..."}, {"op": "unsubscribe_resource", "uri": "..."},
        {"op": "listen_resources", "uris": [...], "calls": [{"name": ..., "arguments": ...}],
         "until": "...", "timeout": 10, "ready_file": PATH, "go_file": PATH}
      ]

`mode` is "legacy", "auto" or a modern protocol version ("2026-07-28"). `"sampling": false`
or `"elicitation": false` leaves that callback out, so the client does not declare the
capability. `listen_call` opens a
`subscriptions/listen` stream for tool list changes (2026-07-28 only), calls the tool, and
reports the acknowledged filter, the call's result and the first event that arrives.
`listen_resources` subscribes to resource updates (2026-07-28 only), makes the calls, and reports
the acknowledged filter, the calls' results and the events until one for `until`.
    }

The output (one JSON object on stdout):

    {"protocol_version": ..., "server_info": {...}, "capabilities": {...},
     "results": [{"ok": ...} | {"error": {"code": ..., "message": ...}}, ...],
     "notifications": [{"method": ..., "params": ...}, ...],
     "sampling": [params, ...], "elicitation": [params, ...]}

A server-to-client sampling request is answered with the text `sampled by the test client`,
an elicitation request is accepted with `{"name": "Test Client"}` (plus defaults for any
other required field). A failure to connect prints `{"connect_error": "..."}` and exits 0, so
the calling test decides what it means.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

import anyio

from mcp import Client, MCPError, StdioServerParameters, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

SAMPLED_TEXT = "sampled by the test client"


def dump(model: Any) -> Any:
    """A pydantic model as the JSON the wire carried (aliases, no unset fields)."""
    if hasattr(model, "model_dump"):
        return model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return model


class Recorder:
    """Collects what the server sends unprompted."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.sampling: list[Any] = []
        self.elicitation: list[Any] = []
        self.changed = anyio.Event()

    async def on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.notifications.append({"method": "<exception>", "params": {"error": str(message)}})
        else:
            body = dump(message)
            self.notifications.append({"method": body.get("method"), "params": body.get("params")})
        self.changed.set()

    async def on_log(self, params: Any) -> None:
        self.notifications.append({"method": "notifications/message", "params": dump(params)})
        self.changed.set()

    async def on_sampling(self, _context: Any, params: types.CreateMessageRequestParams) -> Any:
        self.sampling.append(dump(params))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=SAMPLED_TEXT),
            model="test-model",
            stop_reason="endTurn",
        )

    async def on_elicitation(self, _context: Any, params: types.ElicitRequestParams) -> Any:
        body = dump(params)
        self.elicitation.append(body)
        content: dict[str, Any] = {"name": "Test Client"}
        schema = body.get("requestedSchema") or {}
        for key in schema.get("required", []):
            if key in content:
                continue
            prop = (schema.get("properties") or {}).get(key, {})
            kind = prop.get("type")
            if "default" in prop:
                content[key] = prop["default"]
            elif "enum" in prop:
                content[key] = prop["enum"][0]
            elif kind in ("integer", "number"):
                content[key] = prop.get("minimum", 1)
            elif kind == "boolean":
                content[key] = True
            else:
                content[key] = "x"
        return types.ElicitResult(action="accept", content=content)

    async def wait_for(self, method: str, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            while True:
                if any(n.get("method") == method for n in self.notifications):
                    return True
                self.changed = anyio.Event()
                await self.changed.wait()
        return any(n.get("method") == method for n in self.notifications)


async def run_step(client: Client, recorder: Recorder, step: dict[str, Any]) -> dict[str, Any]:
    op = step["op"]
    timeout = step.get("timeout", 30)
    try:
        if op == "list_tools":
            tools: list[Any] = []
            pages = 0
            cursor = None
            while True:
                page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                pages += 1
                tools.extend(dump(t) for t in page.tools)
                cursor = page.next_cursor
                if cursor is None or pages >= 100:
                    break
            return {"ok": {"tools": tools, "pages": pages}}
        if op == "list_tools_page":
            page = await client.list_tools(cursor=step.get("cursor"), cache_mode="bypass")
            return {"ok": dump(page)}
        if op == "call_tool":
            progress: list[Any] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append({"progress": value, "total": total, "message": message})

            result = await client.call_tool(
                step["name"],
                step.get("arguments") or {},
                read_timeout_seconds=timeout,
                progress_callback=on_progress if step.get("progress") else None,
            )
            out: dict[str, Any] = {"ok": dump(result)}
            if step.get("progress"):
                out["progress"] = progress
            return out
        if op == "list_prompts":
            return {"ok": dump(await client.list_prompts(cache_mode="bypass"))}
        if op == "list_resources":
            return {"ok": dump(await client.list_resources(cache_mode="bypass"))}
        if op == "read_resource":
            return {"ok": dump(await client.read_resource(step["uri"], cache_mode="bypass"))}
        if op == "wait_notification":
            return {"ok": await recorder.wait_for(step["method"], timeout)}
        if op == "listen_call":
            async with client.listen(tools_list_changed=True) as sub:
                honored = dump(sub.honored)
                result = await client.call_tool(step["name"], step.get("arguments") or {})
                events: list[str] = []
                with anyio.move_on_after(timeout):
                    async for event in sub:
                        events.append(type(event).__name__)
                        break
            return {"ok": {"honored": honored, "call": dump(result), "events": events}}
        if op == "subscribe_resource":
            return {"ok": dump(await client.subscribe_resource(step["uri"]))}
        if op == "unsubscribe_resource":
            return {"ok": dump(await client.unsubscribe_resource(step["uri"]))}
        if op == "listen_resources":
            return {"ok": await listen_resources(client, step, timeout)}
        if op == "sleep":
            await anyio.sleep(step["seconds"])
            return {"ok": None}
        return {"error": {"code": None, "message": f"unknown step `{op}`"}}
    except MCPError as e:
        return {"error": {"code": e.code, "message": e.message, "data": e.data}}
    except Exception as e:  # noqa: BLE001 - the test reads every failure
        return {"error": {"code": None, "message": f"{type(e).__name__}: {e}"}}


async def listen_resources(client: Client, step: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Listens for updates of `uris`, makes `calls`, and collects events until one for `until`.

    With `ready_file`, writes it once the stream is acknowledged; with `go_file`, waits (at
    most `timeout`) for that file before making the calls: the test changes things between.
    """
    async with client.listen(resource_subscriptions=step["uris"]) as sub:
        honored = dump(sub.honored)
        if step.get("ready_file"):
            with open(step["ready_file"], "w") as f:
                f.write("ready")
        if step.get("go_file"):
            with anyio.move_on_after(timeout):
                while not os.path.exists(step["go_file"]):
                    await anyio.sleep(0.05)
        calls = []
        for call in step.get("calls", []):
            calls.append(dump(await client.call_tool(call["name"], call.get("arguments") or {})))
        events: list[dict[str, Any]] = []
        with anyio.move_on_after(timeout):
            async for event in sub:
                uri = getattr(event, "uri", None)
                events.append({"type": type(event).__name__, "uri": uri})
                if uri is not None and uri == step.get("until"):
                    break
    return {"honored": honored, "calls": calls, "events": events}


async def main(scenario: dict[str, Any]) -> dict[str, Any]:
    target = scenario["target"]
    if "url" in target and "headers" in target:
        # Headers such as `Authorization` ride on every request of the session.
        server: Any = streamable_http_client(
            target["url"], http_client=create_mcp_http_client(headers=target["headers"])
        )
    elif "url" in target:
        server = target["url"]
    else:
        server = StdioServerParameters(
            command=target["command"], args=target.get("args", []), env=target.get("env")
        )
    recorder = Recorder()
    client = Client(
        server,
        mode=scenario.get("mode", "legacy"),
        cache=None,
        read_timeout_seconds=scenario.get("timeout", 30),
        sampling_callback=recorder.on_sampling if scenario.get("sampling", True) else None,
        elicitation_callback=recorder.on_elicitation if scenario.get("elicitation", True) else None,
        logging_callback=recorder.on_log,
        message_handler=recorder.on_message,
        client_info=types.Implementation(name="mcpgate-e2e", version="1.0.0"),
    )
    out: dict[str, Any] = {}
    connected = False
    try:
        with anyio.fail_after(scenario.get("total_timeout", 120)):
            async with client:
                connected = True
                out["protocol_version"] = client.protocol_version
                out["server_info"] = dump(client.server_info) if client.server_info else None
                out["capabilities"] = dump(client.server_capabilities)
                results: list[Any] = []
                out["results"] = results
                for step in scenario.get("steps", []):
                    results.append(await run_step(client, recorder, step))
    except BaseException as e:  # noqa: BLE001 - reported to the test, which decides
        out["connect_error" if not connected else "close_error"] = describe(e)
    out["notifications"] = recorder.notifications
    out["sampling"] = recorder.sampling
    out["elicitation"] = recorder.elicitation
    return out


def describe(e: BaseException) -> str:
    """One line for an exception, unwrapping exception groups."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return f"{type(e).__name__}: {e}"


if __name__ == "__main__":
    raw = sys.stdin.read() if len(sys.argv) < 2 or sys.argv[1] == "-" else sys.argv[1]
    try:
        result = anyio.run(main, json.loads(raw))
    except BaseException as e:  # noqa: BLE001
        traceback.print_exc()
        result = {"fatal": describe(e)}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
