"""The model's tools: each one a JSON Schema beside its async handler, gathered in a registry.

`registry` holds the machinery; `booking` and `call_control` the tools themselves. The relay is
handed a `ToolRegistry` and knows nothing of SQL.
"""

from __future__ import annotations

from tools.booking import BOOKING_TOOLS
from tools.call_control import CALL_CONTROL_TOOLS
from tools.registry import (
    Tool,
    ToolArgumentsInvalid,
    ToolContext,
    ToolRegistry,
    ToolResult,
    failure,
)

__all__ = [
    "CALL_CONTROL",
    "Tool",
    "ToolArgumentsInvalid",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "default_registry",
    "failure",
]


def default_registry() -> ToolRegistry:
    registry = ToolRegistry()
    for tool in (*BOOKING_TOOLS, *CALL_CONTROL_TOOLS):
        registry.add(tool)
    return registry


CALL_CONTROL = frozenset({"end_call", "transfer_call"})  # tools only a phone line can act on
