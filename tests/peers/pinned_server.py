"""A stdio MCP server built on the official Python SDK (`MCPServer`) whose tool set and
descriptions are read at startup from a JSON file, so a test can change what the server
offers between runs (each gateway session starts the process anew).

The file named by the environment variable `PINNED_SERVER_CONFIG` may hold:

    {"transfer_description": "...",   # description of `transfer` (default below)
     "extra_tools": ["audit_log"]}     # more tools, each echoing its arguments

Tools: `get_balance(account)` (read-only), `transfer(account, amount, memo?)` (destructive),
plus the extra tools. Also a prompt `summary` and a resource template `account://{id}`.
"""

from __future__ import annotations

import json
import os

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

DEFAULT_TRANSFER = "Move an amount (in cents) from the account to the treasury."


def load_config() -> dict:
    path = os.environ.get("PINNED_SERVER_CONFIG")
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


config = load_config()
server = MCPServer("pinned-fixture")


@server.tool(annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False))
def get_balance(account: str) -> str:
    """Read the balance of an account."""
    return f"balance of {account}: 100"


def transfer(account: str, amount: int, memo: str | None = None) -> str:
    return f"moved {amount} from {account}" + (f" ({memo})" if memo else "")


server.add_tool(
    transfer,
    description=config.get("transfer_description", DEFAULT_TRANSFER),
    annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True),
)


def make_extra(name: str):
    def extra(note: str = "") -> str:
        return f"{name} called with {note}"

    return extra


for extra_name in config.get("extra_tools", []):
    server.add_tool(make_extra(extra_name), name=extra_name, description=f"extra tool {extra_name}")


@server.prompt()
def summary(account: str) -> str:
    """Summarize an account."""
    return f"Summarize account {account}."


@server.resource("account://{id}")
def account(id: str) -> str:
    """One account as text."""
    return f"account {id}"


if __name__ == "__main__":
    server.run()
