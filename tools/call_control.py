"""end_call and transfer_call: the host ends or hands over a phone call.

Neither touches a socket: each answers the model (say goodbye / say you are transferring) and
raises a page event that the call's transport acts on once the host's last words have played
(`server/transports/twilio_media.py`, the SIP adapter). The transfer number comes from the
settings, never from the model.
"""

from __future__ import annotations

from typing import Any

from protocol import realtime as p
from tools.registry import Tool, ToolContext, ToolResult, failure


async def end_call(args: dict[str, Any], context: ToolContext) -> ToolResult:
    reason = str(args.get("reason") or "caller finished")[:200]
    output = {"ok": True, "message": "Say a short goodbye now; the call ends once you finish."}
    return ToolResult(output, p.custom_event(p.CALL_END_REQUESTED, reason=reason))


async def transfer_call(args: dict[str, Any], context: ToolContext) -> ToolResult:
    number = context.settings.transfer_number
    if not number:
        return failure("transfer_unavailable", "Calls cannot be transferred here.")
    output = {
        "ok": True,
        "message": "Tell the caller in one short sentence that you are transferring them now.",
    }
    reason = str(args.get("reason") or "")[:200]
    return ToolResult(
        output, p.custom_event(p.CALL_TRANSFER_REQUESTED, number=number, reason=reason)
    )


END_CALL = Tool(
    name="end_call",
    description=(
        "End the phone call. Call it when the caller is done (after the booking is settled, or "
        "when they say goodbye). Then say a short goodbye: the line closes once it has played."
    ),
    parameters={
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "Why, in a few words."}},
        "additionalProperties": False,
    },
    handler=end_call,
)

TRANSFER_CALL = Tool(
    name="transfer_call",
    description=(
        "Transfer the caller to a member of staff: when they ask for a person, or for anything "
        "you cannot do (large events, complaints). Tell them you are transferring them."
    ),
    parameters={
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "Why, in a few words."}},
        "additionalProperties": False,
    },
    handler=transfer_call,
)

CALL_CONTROL_TOOLS = (END_CALL, TRANSFER_CALL)
