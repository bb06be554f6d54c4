-- Claims up to `p_limit` pending jobs of `p_queues` (and `p_names`, when given), priority first then oldest,
-- skipping jobs other claimers hold locked, leases them to `p_worker` for `p_lease_ms` from `p_now` (the caller's
-- clock; the database's when null), started at once with `p_start`, and writes their events. The same statement
-- registers the worker (or refreshes its registration): what it serves, its heartbeat interval, and that it was
-- seen now. Answers the claimed jobs.
-- Planned for its arguments on every call (plan_cache_mode), as the ad-hoc statement it replaced was: a cached
-- generic plan cannot see the LIMIT or how many rows qualify, and a plan that suits a small table stays on as the
-- table grows.
CREATE OR REPLACE FUNCTION job_claim(p_worker text, p_queues text[], p_names text[], p_limit integer,
  p_lease_ms integer, p_heartbeat_ms integer, p_now timestamptz, p_start boolean)
RETURNS SETOF jobs LANGUAGE plpgsql SET search_path FROM CURRENT SET plan_cache_mode = force_custom_plan AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
BEGIN
  RETURN QUERY
  WITH w AS (
    INSERT INTO workers AS w (id, queues, names, heartbeat_interval_ms, lease_ms, registered_at, last_seen_at)
    VALUES (p_worker, p_queues, p_names, p_heartbeat_ms, p_lease_ms, v_now, v_now)
    ON CONFLICT (id) DO UPDATE SET queues = EXCLUDED.queues, names = EXCLUDED.names,
      heartbeat_interval_ms = EXCLUDED.heartbeat_interval_ms, lease_ms = EXCLUDED.lease_ms,
      last_seen_at = EXCLUDED.last_seen_at
    RETURNING w.id
  ), cand AS (
    SELECT c.id FROM jobs c
    WHERE c.status = 'pending' AND c.queue = ANY (p_queues) AND (p_names IS NULL OR c.name = ANY (p_names))
    ORDER BY c.priority DESC, c.id
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  ), upd AS (
    UPDATE jobs j SET
      status = CASE WHEN p_start THEN 'running' ELSE 'claimed' END, version = j.version + 1, updated_at = now(),
      attempt = j.attempt + 1, worker_id = (SELECT w.id FROM w),
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
