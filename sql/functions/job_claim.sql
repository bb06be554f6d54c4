-- Claims up to `p_limit` pending jobs of `p_queues` (and `p_names`, when given), priority first then oldest,
-- skipping jobs other claimers hold locked, leases them to `p_worker` for `p_lease_ms` from `p_now` (the caller's
-- clock; the database's when null), started at once with `p_start`, and writes their events. The same call
-- registers the worker (or refreshes its registration): what it serves, its heartbeat interval, and that it was
-- seen now (to the second). Answers the claimed jobs.
-- Planned for its arguments on every call (plan_cache_mode), as the ad-hoc statement it replaced was: a cached
-- generic plan cannot see the LIMIT or how many rows qualify, and a plan that suits a small table stays on as the
-- table grows. (Measured again: a generic plan made just after the table was emptied read the pending jobs through
-- jobs_by_status and sorted them all, 14 ms a claim at 10k pending, where the custom plan takes 3 ms with its 0.4 ms
-- of planning.) Sequential scans off: see job_complete_many.
CREATE OR REPLACE FUNCTION job_claim(p_worker text, p_queues text[], p_names text[], p_limit integer,
  p_lease_ms integer, p_heartbeat_ms integer, p_now timestamptz, p_start boolean)
RETURNS SETOF jobs LANGUAGE plpgsql SET search_path FROM CURRENT SET plan_cache_mode = force_custom_plan
  SET enable_seqscan = off AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
BEGIN
  -- the registration is written only when it changed or is over a second old: a claim that finds nothing then
  -- writes nothing (no transaction id, no WAL to flush at its commit), where it used to cost a row update each time
  IF NOT EXISTS (
    SELECT 1 FROM workers w
    WHERE w.id = p_worker AND w.queues = p_queues AND w.names IS NOT DISTINCT FROM p_names
      AND w.heartbeat_interval_ms = p_heartbeat_ms AND w.lease_ms = p_lease_ms
      AND w.last_seen_at BETWEEN v_now - interval '1 second' AND v_now
  ) THEN
    INSERT INTO workers AS w (id, queues, names, heartbeat_interval_ms, lease_ms, registered_at, last_seen_at)
    VALUES (p_worker, p_queues, p_names, p_heartbeat_ms, p_lease_ms, v_now, v_now)
    ON CONFLICT (id) DO UPDATE SET queues = EXCLUDED.queues, names = EXCLUDED.names,
      heartbeat_interval_ms = EXCLUDED.heartbeat_interval_ms, lease_ms = EXCLUDED.lease_ms,
      last_seen_at = EXCLUDED.last_seen_at;
  END IF;
  RETURN QUERY
  WITH cand AS (
    -- per queue, its first jobs in the order of jobs_claim_order (an index scan that stops at the limit; with
    -- `queue = ANY (p_queues)` the scan cannot give that order, and every claim sorted all the pending jobs of its
    -- queues), then the first of those; with several queues, rows locked beyond the limit are let go at commit
    SELECT x.id FROM (SELECT DISTINCT unnest(p_queues) AS queue) q
    CROSS JOIN LATERAL (
      SELECT c.id, c.priority FROM jobs c
      WHERE c.status = 'pending' AND NOT c.external AND c.job_type_id IS NULL AND c.queue = q.queue AND (p_names IS NULL OR c.name = ANY (p_names))
      ORDER BY c.priority DESC, c.id
      LIMIT p_limit
      FOR UPDATE SKIP LOCKED
    ) x
    ORDER BY x.priority DESC, x.id
    LIMIT p_limit
  ), upd AS (
    UPDATE jobs j SET
      status = CASE WHEN p_start THEN 'running' ELSE 'claimed' END, version = j.version + 1, updated_at = now(),
      attempt = j.attempt + 1, worker_id = p_worker,
      lease_expires_at = v_now + p_lease_ms * interval '1 millisecond',
      claimed_at = v_now, started_at = CASE WHEN p_start THEN v_now END, cancel_requested = false,
      event_tx = greatest(j.event_tx, pg_current_xact_id())
    FROM cand WHERE j.id = cand.id
    RETURNING j.*
  ), ev AS (
    INSERT INTO job_events (job_id, version, type, status, previous_status, progress, previous_progress, step,
      attempt, tx)
    SELECT u.id, u.version, 'job.status.changed', u.status, 'pending', u.progress_percent, u.progress_percent,
      u.progress_step, u.attempt, u.event_tx
    FROM upd u
  )
  SELECT * FROM upd;
END
$$;
