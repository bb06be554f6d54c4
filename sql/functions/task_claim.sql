-- Claims up to `p_limit` pending tasks for worker `p_worker`: tasks of the job types it serves (job_type_workers),
-- in rooms `p_rooms` when given, priority first then oldest, skipping tasks other claimers hold locked, leased for
-- `p_lease_ms` from `p_now` (the database's clock when null), started at once with `p_start`, with their events.
-- The worker must be registered (by a job type registration, which links it): an unknown one raises 'P0002'
-- (no_data_found), so that the caller answers WorkerNotFound and the client registers again. Seen now (to the
-- second). Planned per call, sequential scans off: see job_claim.
CREATE OR REPLACE FUNCTION task_claim(p_worker text, p_rooms text[], p_limit integer, p_lease_ms integer,
  p_heartbeat_ms integer, p_now timestamptz, p_start boolean)
RETURNS SETOF jobs LANGUAGE plpgsql SET search_path FROM CURRENT SET plan_cache_mode = force_custom_plan
  SET enable_seqscan = off AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM workers w
    WHERE w.id = p_worker AND w.heartbeat_interval_ms = p_heartbeat_ms AND w.lease_ms = p_lease_ms
      AND w.last_seen_at BETWEEN v_now - interval '1 second' AND v_now
  ) THEN
    UPDATE workers w SET heartbeat_interval_ms = p_heartbeat_ms, lease_ms = p_lease_ms,
      last_seen_at = greatest(w.last_seen_at, v_now)
    WHERE w.id = p_worker;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'worker % is not registered', p_worker USING ERRCODE = 'P0002';
    END IF;
  END IF;
  RETURN QUERY
  WITH cand AS (
    -- per type served, its first tasks in the order of jobs_task_claim_order, then the first of those
    SELECT x.id FROM job_type_workers l
    CROSS JOIN LATERAL (
      SELECT c.id, c.priority FROM jobs c
      WHERE c.status = 'pending' AND c.job_type_id = l.job_type_id AND (p_rooms IS NULL OR c.queue = ANY (p_rooms))
      ORDER BY c.priority DESC, c.id
      LIMIT p_limit
      FOR UPDATE SKIP LOCKED
    ) x
    WHERE l.worker_id = p_worker
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
