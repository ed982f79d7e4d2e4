"""Transport adapters: each turns one way of carrying a call into the call core's `Transport`.

- `realtime_socket`: `/v1/realtime`, the OpenAI Realtime protocol (the page, the demo, SDK clients)
"""
