-- The set-based changes, one statement for all of them, each job changed compare-and-set under its lock with the
-- event of its new version:
--   expired_leases  held jobs whose lease expired before `p_now` (their worker died or hung): the attempt ends
--                   (job_attempt_end, no backoff: the backoff is for failures of the job, not of its worker) with
--                   code worker_lost; canceled when a cancel was requested
--   timeouts        held jobs that ran longer than their timeout: the attempt ends with its backoff, code timeout;
--                   canceled when a cancel was requested
--   promote_due     scheduled jobs due at `p_now` become pending
--   release         a worker (`p_worker`) shutting down lets go of its held jobs (`p_ids`, or all): back to pending
--                   without using up the attempt (canceled when that was requested)
-- At most `p_limit` jobs (not for release), skipping those other statements hold locked. Answers what changed.
-- Planned for its arguments on every call (plan_cache_mode), as the ad-hoc statement it replaced was: a cached
-- generic plan cannot see the LIMIT or how many rows qualify, and a plan that suits a small table stays on as the
-- table grows.
-- Sequential scans off: see job_complete_many.
CREATE OR REPLACE FUNCTION job_bulk(p_kind text, p_now timestamptz, p_limit integer, p_worker text, p_ids uuid[])
RETURNS TABLE (id uuid, status text, previous_status text)
LANGUAGE plpgsql SET search_path FROM CURRENT SET plan_cache_mode = force_custom_plan SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
  picked uuid[];
BEGIN
  CASE p_kind
    WHEN 'expired_leases' THEN
      SELECT array_agg(c.id) INTO picked FROM (
        SELECT j.id FROM jobs j WHERE j.status IN ('claimed', 'running') AND j.lease_expires_at < p_now
        ORDER BY j.lease_expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED) c;
    WHEN 'timeouts' THEN
      SELECT array_agg(c.id) INTO picked FROM (
        SELECT j.id FROM jobs j WHERE j.status IN ('claimed', 'running') AND j.timeout_ms IS NOT NULL
          AND j.claimed_at + j.timeout_ms * interval '1 millisecond' < p_now
        ORDER BY j.lease_expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED) c;
    WHEN 'promote_due' THEN
      SELECT array_agg(c.id) INTO picked FROM (
        SELECT j.id FROM jobs j WHERE j.status = 'scheduled' AND j.scheduled_at <= p_now
        ORDER BY j.scheduled_at LIMIT p_limit FOR UPDATE SKIP LOCKED) c;
    WHEN 'release' THEN
      SELECT array_agg(c.id) INTO picked FROM (
        SELECT j.id FROM jobs j WHERE j.worker_id = p_worker AND j.status IN ('claimed', 'running')
          AND (p_ids IS NULL OR j.id = ANY (p_ids))
        FOR UPDATE) c;
  END CASE;
  IF picked IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
  WITH cur AS (
    SELECT j.id, j.status, j.worker_id, j.cancel_requested, j.attempt, j.max_attempts,
      -- the retry delay of an ended attempt, drawn once per job (its status and its time agree)
      CASE WHEN p_kind = 'timeouts' THEN
        job_retry_delay_ms(j.backoff_base_ms, j.backoff_max_ms, j.backoff_multiplier, j.attempt, random())
        ELSE 0 END AS delay,
      CASE p_kind WHEN 'expired_leases' THEN 'worker_lost' WHEN 'timeouts' THEN 'timeout' END AS code,
      CASE p_kind
        WHEN 'expired_leases' THEN 'the lease of worker ' || coalesce(j.worker_id, '?') || ' expired at '
          || j.lease_expires_at || ' without a heartbeat'
        WHEN 'timeouts' THEN 'attempt ' || j.attempt || ' ran longer than its timeout of '
          || (j.timeout_ms / 1000.0)::float8 || ' s'
      END AS error
    FROM jobs j WHERE j.id = ANY (picked)
  ), ends AS (
    SELECT cur.*, CASE WHEN p_kind = 'promote_due' THEN 'pending'
        WHEN cur.cancel_requested THEN 'canceled'
        WHEN p_kind = 'release' THEN 'pending'
        ELSE job_attempt_end(true, cur.attempt, cur.max_attempts, cur.delay)
      END AS to_status
    FROM cur
  ), nxt AS (
    SELECT ends.*, ends.to_status IN ('pending', 'scheduled') AS requeued FROM ends
  ), upd AS (
    UPDATE jobs j SET status = n.to_status, version = j.version + 1, updated_at = now(),
      event_tx = greatest(j.event_tx, pg_current_xact_id()),
      worker_id = CASE WHEN n.requeued OR p_kind = 'release' THEN NULL ELSE j.worker_id END,
      lease_expires_at = NULL, cancel_requested = false,
      attempt = CASE WHEN p_kind = 'release' AND n.requeued THEN greatest(j.attempt - 1, 0) ELSE j.attempt END,
      scheduled_at = CASE WHEN n.requeued AND p_kind IN ('expired_leases', 'timeouts')
        THEN p_now + n.delay * interval '1 millisecond' ELSE j.scheduled_at END,
      finished_at = CASE WHEN n.requeued THEN NULL ELSE now() END,
      error_code = CASE WHEN n.code IS NULL OR j.cancel_requested THEN j.error_code ELSE n.code END,
      error_message = CASE WHEN n.code IS NULL OR j.cancel_requested THEN j.error_message ELSE n.error END
    FROM nxt n WHERE j.id = n.id
    RETURNING j.*, n.status AS previous_status, n.worker_id AS previous_worker, n.code IS NOT NULL AS ended
  ), ev AS (
    INSERT INTO job_events (job_id, version, type, status, previous_status, progress, previous_progress, step,
      message, attempt, error_code, error_message, tx)
    SELECT u.id, u.version, 'job.status.changed', u.status, u.previous_status, u.progress_percent,
      u.progress_percent, u.progress_step,
      CASE WHEN u.status = 'canceled' THEN 'canceled: its worker stopped after the cancel request'
        WHEN p_kind = 'release' THEN 'released by worker ' || u.previous_worker || ' at shutdown'
        WHEN u.ended THEN u.error_message END,
      u.attempt,
      CASE WHEN u.ended AND u.status <> 'canceled' THEN u.error_code END,
      CASE WHEN u.ended AND u.status <> 'canceled' THEN u.error_message END,
      u.event_tx
    FROM upd u
  )
  SELECT u.id, u.status, u.previous_status FROM upd u;
END
$$;
