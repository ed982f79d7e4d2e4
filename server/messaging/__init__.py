"""Guest messages: the texts, the sender of the outbox, Twilio Messaging, the SMS webhooks."""
