-- Webhook bodies are rendered from the event's envelope when they are delivered (src/Webhooks/claims.ts): a delivery
-- row records only which endpoint gets which event (endpoint, job, version). New rows leave `type` and `body` null;
-- rows written before this migration keep theirs, and are delivered from their event like the others.
ALTER TABLE webhook_deliveries ALTER COLUMN type DROP NOT NULL, ALTER COLUMN body DROP NOT NULL;

-- The fan-out no longer names a webhook type in SQL: the wire's type is the event's envelope type (Domain/JobEvent).
DROP FUNCTION IF EXISTS webhook_type(text, text, boolean);
