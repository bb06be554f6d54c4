-- An endpoint's body format: `standard` (the Standard Webhooks body: type, timestamp, data = the event envelope) or
-- `simple` (the flat body of the notification system jobwatch replaces: id, jobname, userId, progress | result |
-- error, eventType), both signed with the Standard Webhooks headers.
ALTER TABLE webhook_endpoints ADD COLUMN format text NOT NULL DEFAULT 'standard'
  CHECK (format IN ('standard', 'simple'));
