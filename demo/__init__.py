"""Scripted callers for a running server. They use only the server's public interfaces; nothing
imports them.

- the page's protocol: `cli` (``python -m demo``), `page` (the call's I/O), `steps` (what it
  says), `call_log` (events in, lines and a verdict out), `microphone` (a WAV as 20 ms frames);
- a Twilio phone call (``--phone``): `phone` (the I/O), `phone_log` (the playback clock and the
  verdict), `twiml` (the voice webhook as Twilio posts it), `phone_audio` (made-up speech, μ-law);
- a SIP call (``--sip``): `sip`, a server and the offline model started in this process.
"""
