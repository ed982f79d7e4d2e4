"""`server.asgi:app` for `uvicorn --workers N` or any ASGI server: settings from the environment."""

from server.app import create_app

app = create_app()
