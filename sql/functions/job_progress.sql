-- Writes a progress report of job `p_id`, keeping the maximum: the job must be claimed or running (held by
-- `p_worker` when given) and not further than `p_percent` already. Progress above 0 makes a claimed job running
-- (started at `p_now`). The event (job.progress) is a `milestone` when the report is the job's first, crosses 25, 50,
-- 75 or 100, or moved 10 points or more since the last marked one. Answers as job_transition does: null when the
-- job does not exist; else `{foundStatus, foundWorker, foundPercent}` and, when it was written, `job` and `event`.
-- An external job (job_transition's rule) has no holder, and a pending one counts as claimed: progress 0 keeps it
-- pending, above 0 starts it (its attempt begins).
-- Sequential scans off: see job_complete_many.
CREATE OR REPLACE FUNCTION job_progress(p_id uuid, p_worker text, p_percent double precision, p_step text,
  p_message text, p_data jsonb, p_now timestamptz)
RETURNS json LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  cur record;
  changed jobs;
  written job_events;
  starts boolean;
  milestone boolean;
BEGIN
  SELECT status, worker_id, progress_percent, progress_marked, external INTO cur FROM jobs WHERE id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF NOT (cur.status IN ('claimed', 'running') OR (cur.external AND cur.status = 'pending'))
    OR cur.progress_percent > p_percent
    OR (p_worker IS NOT NULL AND NOT cur.external AND cur.worker_id IS DISTINCT FROM p_worker) THEN
    RETURN json_build_object('foundStatus', cur.status, 'foundWorker', cur.worker_id,
      'foundPercent', cur.progress_percent, 'foundExternal', cur.external);
  END IF;
  starts := cur.status IN ('claimed', 'pending') AND p_percent > 0;
  milestone := cur.progress_marked IS NULL OR p_percent - cur.progress_marked >= 10
    OR floor(p_percent / 25) > floor(cur.progress_marked / 25);
  UPDATE jobs SET
    status = CASE WHEN starts THEN 'running' ELSE status END,
    started_at = CASE WHEN starts THEN p_now ELSE started_at END,
    attempt = CASE WHEN starts AND cur.status = 'pending' THEN attempt + 1 ELSE attempt END,
    progress_percent = p_percent,
    progress_step = coalesce(p_step, progress_step),
    progress_message = coalesce(p_message, progress_message),
    progress_data = coalesce(p_data, progress_data),
    progress_updated_at = now(),
    progress_marked = CASE WHEN milestone THEN p_percent ELSE progress_marked END,
    version = version + 1, updated_at = now(), event_tx = greatest(event_tx, pg_current_xact_id())
  WHERE id = p_id RETURNING * INTO changed;
  INSERT INTO job_events (job_id, version, type, status, previous_status, progress, previous_progress, step,
    message, attempt, milestone, data, tx)
  VALUES (changed.id, changed.version, 'job.progress', changed.status, cur.status, changed.progress_percent,
    cur.progress_percent, changed.progress_step, p_message, changed.attempt, milestone, p_data, changed.event_tx)
  RETURNING * INTO written;
  RETURN json_build_object('foundStatus', cur.status, 'foundWorker', cur.worker_id,
    'foundPercent', cur.progress_percent, 'foundExternal', cur.external, 'job', row_to_json(changed),
    'event', row_to_json(written));
END
$$;
