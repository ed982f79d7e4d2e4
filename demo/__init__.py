"""Scripted callers for a running server: the page protocol (`page`), a Twilio phone call
(`phone`) and a SIP call (`sip`). They use only the server's public interfaces; nothing imports
them."""
