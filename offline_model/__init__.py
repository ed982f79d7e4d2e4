"""A protocol-faithful offline stand-in for the OpenAI Realtime API (GA), for tests and demos.

``await start(port=0)`` serves ``ws://127.0.0.1:PORT/v1/realtime?model=…`` well enough for the
``openai`` SDK to connect (``base_url=model.url``): sessions, typed and spoken turns (pocketsphinx
in worker processes, PCM16 24 kHz or G.711 μ-law) answered with a scripted booking dialog and real
tool calls, synthetic audio replies, energy VAD, barge-in, cancel and truncate, plus an echo mode
for relay benchmarks. Only ``protocol.realtime`` is imported from the rest of the project,
so the package can ship on its own.
"""

from .server import OfflineModel, start
from .stats import Stats

__all__ = ["OfflineModel", "Stats", "start"]
