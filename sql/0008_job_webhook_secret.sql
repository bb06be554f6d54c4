-- A job's own callback can be signed: the secret its creator gave at enqueue (Standard Webhooks, `whsec_…`), kept
-- with the job and never answered back. Without one the callback goes unsigned, as before.
ALTER TABLE jobs ADD COLUMN webhook_secret text;
