-- Completes the jobs `p_ids` (results `p_results` as JSON text, event messages `p_messages`, by position) that are
-- in one of `p_from` and, when `p_worker` is given, held by it. Answers a JSON array with one item per job found:
-- `{id, foundStatus, foundWorker, event, result, queue, runSeconds}`, `event` (as `row_to_json` writes it),
-- `result`, `queue` and `runSeconds` (the attempt's, for the metrics) null for a job that was not completed; null when no job was found. The rule is job_complete_claim's, claiming nothing,
-- written out here rather than delegated: a call through job_complete_claim is planned on every call (its claim
-- needs that), and that planning made an idle completion measurably slower (harness scenario a: 5.1x the floor
-- against 3.4x).
-- An external job (job_transition's rule) has no holder, and a pending one counts as claimed.
-- Sequential scans are off in its statements (and in the other writers that find jobs by id): PostgreSQL's idea of
-- a table emptied and refilled since its last ANALYZE (autovacuum off, or not yet run) planned the lookup of a batch
-- as a scan of the whole table, and in the harness's lifecycle run of 10k jobs the completions made 1,600 scans that
-- read 14.7 million rows.
CREATE OR REPLACE FUNCTION job_complete_many(p_worker text, p_ids uuid[], p_results text[], p_messages text[], p_from text[])
RETURNS json LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  answer json;
BEGIN
  WITH input AS (
    SELECT * FROM unnest(p_ids, p_results, p_messages) AS i(id, result, message)
  ), cur AS (
    SELECT j.id, j.status, j.worker_id, j.progress_percent, j.external FROM jobs j
    WHERE j.id IN (SELECT id FROM input) ORDER BY j.id FOR UPDATE
  ), upd AS (
    -- what job_transition's complete sets
    UPDATE jobs j SET status = 'completed', version = j.version + 1, updated_at = now(),
      result = i.result::jsonb, finished_at = now(), lease_expires_at = NULL, progress_percent = 100,
      cancel_requested = false, event_tx = greatest(j.event_tx, pg_current_xact_id()),
      attempt = CASE WHEN cur.status = 'pending' THEN j.attempt + 1 ELSE j.attempt END
    FROM cur JOIN input i ON i.id = cur.id
    WHERE j.id = cur.id
      AND (cur.status = ANY (p_from) OR (cur.external AND cur.status = 'pending' AND 'claimed' = ANY (p_from)))
      AND (p_worker IS NULL OR cur.external OR cur.worker_id = p_worker)
    RETURNING j.*, cur.status AS previous_status, cur.progress_percent AS previous_progress,
      i.message AS event_message
  ), ev AS (
    INSERT INTO job_events (job_id, version, type, status, previous_status, progress, previous_progress, step,
      message, attempt, tx)
    SELECT id, version, 'job.status.changed', status, previous_status, progress_percent, previous_progress,
      progress_step, event_message, attempt, event_tx
    FROM upd
    RETURNING *
  )
  SELECT json_agg(json_build_object('id', cur.id, 'foundStatus', cur.status, 'foundWorker', cur.worker_id,
    'event', CASE WHEN e.job_id IS NULL THEN NULL ELSE row_to_json(e) END, 'result', u.result,
    'queue', u.queue, 'runSeconds', extract(epoch FROM u.finished_at - u.claimed_at)::float8,
        'artefacts', u.artefacts))
  INTO answer
  FROM cur LEFT JOIN upd u ON u.id = cur.id LEFT JOIN ev e ON e.job_id = u.id;
  RETURN answer;
END
$$;
