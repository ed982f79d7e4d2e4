-- Webhook deliveries already acted on, shared by every server process and host: OpenAI may
-- deliver one event more than once (and to whichever worker answers), so the webhook-id is
-- inserted before acting and a delivery whose id is already here is answered 200 and dropped.
-- Rows older than a few days are pruned by the webhook handler (OpenAI retries for up to 72 h).
CREATE TABLE webhook_deliveries (
    webhook_id   text        PRIMARY KEY,
    event_type   text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_deliveries_received_idx ON webhook_deliveries (received_at);
