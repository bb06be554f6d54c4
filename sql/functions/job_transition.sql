-- A job's single transitions run in one PL/pgSQL function, parsed and planned once per connection and kept (an ad-hoc
-- statement of data-modifying CTEs was parsed and planned on every call: about 40% of PostgreSQL's time per completion).
-- Moves job `p_id` (of `p_owner` when given) from one of `p_from` (held by `p_worker` when given) to `p_to`,
-- making the change `p_change` and writing the event of the new version. Answers null when the job does not
-- exist; else `{foundStatus, foundWorker}` (the status and worker found) and, when the change applied, `job` and
-- `event`: the changed row and the event written, as `row_to_json` writes them. One JSON value: the statement
-- that calls it is a plain function call, the cheapest to parse and plan.
--   status          the status only
--   start           and started_at
--   complete        and the result (`p_result`), progress at 100; the job is let go (job_complete_many's rule)
--   fail            and the error (`p_code`, `p_error`); the job is let go
--   retry           back to the queue after `p_delay_ms`, with the error of the attempt
--   finish          finished now (canceled, deleted); the job is let go
--   request_cancel  the status stays: cancel_requested is set (once: refused when it is set already)
--   attempt_failed  the holder's fail: retried after its backoff (jittered by `p_jitter`, from `p_now`) when
--                   `p_retryable`, not canceled and attempts remain; else failed for good (`p_to` is not used)
-- An external job (`tracking: "external"`, run by a system outside jobwatch) has no holder: any worker reports on
-- it (`p_worker` is not compared), a pending one counts as claimed for those reports (start, complete, fail: the
-- attempt begins then), and its fail is final (retries are the external system's).
-- Sequential scans off: see job_complete_many.
CREATE OR REPLACE FUNCTION job_transition(
  p_id uuid, p_change text, p_to text, p_from text[], p_owner text, p_worker text, p_message text,
  p_result jsonb, p_code text, p_error text, p_delay_ms double precision, p_retryable boolean,
  p_now timestamptz, p_jitter double precision
) RETURNS json
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  cur record;
  changed jobs;
  written job_events;
  retried boolean;
  delay double precision;
  next_status text;
  completed json;
BEGIN
  -- what the checks and the event need, not the whole row (the payload and result may be large)
  SELECT status, worker_id, progress_percent, cancel_requested, attempt, max_attempts, backoff_base_ms,
    backoff_max_ms, backoff_multiplier, external
  INTO cur FROM jobs WHERE id = p_id AND (p_owner IS NULL OR owner = p_owner) FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF NOT (cur.status = ANY (p_from) OR (cur.external AND cur.status = 'pending' AND 'claimed' = ANY (p_from)
      AND p_change IN ('start', 'complete', 'attempt_failed')))
    OR (p_worker IS NOT NULL AND NOT cur.external AND cur.worker_id IS DISTINCT FROM p_worker)
    OR (p_change = 'request_cancel' AND cur.cancel_requested) THEN
    RETURN json_build_object('foundStatus', cur.status, 'foundWorker', cur.worker_id, 'foundExternal', cur.external);
  END IF;
  CASE p_change
    WHEN 'status' THEN
      UPDATE jobs SET status = p_to, version = version + 1, updated_at = now(),
        event_tx = greatest(event_tx, pg_current_xact_id())
      WHERE id = p_id RETURNING * INTO changed;
    WHEN 'start' THEN
      UPDATE jobs SET status = p_to, version = version + 1, updated_at = now(),
        event_tx = greatest(event_tx, pg_current_xact_id()), started_at = now(),
        attempt = CASE WHEN cur.status = 'pending' THEN attempt + 1 ELSE attempt END
      WHERE id = p_id RETURNING * INTO changed;
    WHEN 'complete' THEN
      -- the complete rule is job_complete_many's, for one job (locked here already, and checked)
      completed := job_complete_many(p_worker, ARRAY[p_id], ARRAY[p_result::text], ARRAY[p_message], p_from) -> 0;
      SELECT * INTO changed FROM jobs WHERE id = p_id;
      RETURN json_build_object('foundStatus', cur.status, 'foundWorker', cur.worker_id, 'foundExternal', cur.external,
        'job', row_to_json(changed), 'event', completed -> 'event');
    WHEN 'fail' THEN
      UPDATE jobs SET status = p_to, version = version + 1, updated_at = now(),
        event_tx = greatest(event_tx, pg_current_xact_id()), error_code = p_code,
        error_message = p_error, finished_at = now(), lease_expires_at = NULL, cancel_requested = false
      WHERE id = p_id RETURNING * INTO changed;
    WHEN 'retry' THEN
      UPDATE jobs SET status = p_to, version = version + 1, updated_at = now(),
        event_tx = greatest(event_tx, pg_current_xact_id()),
        scheduled_at = now() + p_delay_ms * interval '1 millisecond', worker_id = NULL, lease_expires_at = NULL,
        error_code = p_code, error_message = p_error, cancel_requested = false
      WHERE id = p_id RETURNING * INTO changed;
    WHEN 'finish' THEN
      UPDATE jobs SET status = p_to, version = version + 1, updated_at = now(),
        event_tx = greatest(event_tx, pg_current_xact_id()), finished_at = now(),
        lease_expires_at = NULL
      WHERE id = p_id RETURNING * INTO changed;
    WHEN 'request_cancel' THEN
      UPDATE jobs SET version = version + 1, updated_at = now(),
        event_tx = greatest(event_tx, pg_current_xact_id()), cancel_requested = true
      WHERE id = p_id RETURNING * INTO changed;
    WHEN 'attempt_failed' THEN
      delay := job_retry_delay_ms(cur.backoff_base_ms, cur.backoff_max_ms, cur.backoff_multiplier, cur.attempt,
        p_jitter);
      next_status := CASE WHEN cur.external THEN 'failed'
        ELSE job_attempt_end(p_retryable AND NOT cur.cancel_requested, cur.attempt, cur.max_attempts, delay) END;
      retried := next_status <> 'failed';
      UPDATE jobs SET
        status = next_status,
        version = version + 1, updated_at = now(),
        event_tx = greatest(event_tx, pg_current_xact_id()), lease_expires_at = NULL, cancel_requested = false,
        worker_id = CASE WHEN retried THEN NULL ELSE worker_id END,
        scheduled_at = CASE WHEN retried THEN p_now + delay * interval '1 millisecond' ELSE scheduled_at END,
        finished_at = CASE WHEN retried THEN NULL ELSE now() END,
        attempt = CASE WHEN cur.status = 'pending' THEN attempt + 1 ELSE attempt END,
        error_code = p_code, error_message = p_error
      WHERE id = p_id RETURNING * INTO changed;
  END CASE;
  INSERT INTO job_events (job_id, version, type, status, previous_status, progress, previous_progress, step,
    message, attempt, error_code, error_message, tx)
  VALUES (changed.id, changed.version,
    CASE WHEN p_change = 'request_cancel' THEN 'job.cancel_requested' ELSE 'job.status.changed' END,
    changed.status, cur.status, changed.progress_percent, cur.progress_percent, changed.progress_step, p_message,
    changed.attempt, p_code, p_error, changed.event_tx)
  RETURNING * INTO written;
  RETURN json_build_object('foundStatus', cur.status, 'foundWorker', cur.worker_id, 'foundExternal', cur.external,
    'job', row_to_json(changed), 'event', row_to_json(written));
END
$$;
