"""`server.asgi:app` for `uvicorn --workers N` or any ASGI server: settings from the environment."""

from server import logs
from server.app import create_app
from server.settings import Settings

settings = Settings()
logs.configure(settings.log_level, settings.log_format)
app = create_app(settings)
