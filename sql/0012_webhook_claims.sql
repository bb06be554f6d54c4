-- Webhook claims that hold across processes, and endpoint health that every deliverer shares.
--
-- A claim writes a token of its own into the delivery; every later write of that attempt (its record, a release at
-- shutdown) names the token, so that a deliverer whose claim ran out and was taken over cannot settle or release
-- the delivery another deliverer now holds.
ALTER TABLE webhook_deliveries ADD COLUMN claim uuid;

-- The endpoint's health: failed attempts since its last success, and when it last succeeded (null: never, since it
-- was created or its URL changed). An endpoint that has not answered yet, or whose last attempts failed, gets one
-- delivery in flight at a time (a probe), in any process: the probe's claim token and until when it holds.
ALTER TABLE webhook_endpoints
  ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0,
  ADD COLUMN last_success_at timestamptz,
  ADD COLUMN probe_claim uuid,
  ADD COLUMN probe_until timestamptz;

-- Deliveries held by a deliverer (or by a dead one, until its lease runs out): counted per endpoint by every claim.
CREATE INDEX webhook_deliveries_held ON webhook_deliveries (endpoint_id, locked_until)
  WHERE status = 'pending' AND locked_until IS NOT NULL;

-- A claim visits each endpoint with pending deliveries and takes its first due ones (jobs' own callbacks: the null
-- endpoint), rather than sorting every due delivery.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, next_attempt_at) WHERE status = 'pending';

-- The probes' holds, read by an idle deliverer to wake when one runs out.
CREATE INDEX webhook_endpoints_probing ON webhook_endpoints (probe_until) WHERE probe_until IS NOT NULL;
