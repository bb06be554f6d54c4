-- A worker's group commit and its next claim in one statement (one round trip, one commit, one firing of the event
-- triggers, so one doorbell): completes the jobs `p_ids` (results `p_results` as JSON text, event messages
-- `p_messages`, by position) that are in one of `p_from` and, when `p_worker` is given, held by it; then, for the
-- slots they free, claims up to `p_limit` pending jobs of `p_queues` (and `p_names`) for `p_worker`, priority first
-- then oldest, skipping jobs other claimers hold locked, started at once (`running`), leased for `p_lease_ms` from
-- `p_now` (the caller's clock; the database's when null). The claim is job_claim's, but it does not register the
-- worker: a worker that is not registered (forgotten by the reaper while it ran) claims nothing here, and its next
-- job_claim registers it again. Answers `{answers, claimed}`: `answers` as job_complete_many's (one item per job
-- found: `{id, foundStatus, foundWorker, event, result}`, `event` and `result` null for a job that was not completed;
-- null when no job was found), `claimed` the claimed rows as `row_to_json` writes them, in claim order (null when
-- none). With `p_limit` 0 it is job_complete_many.
-- Planned for its arguments on every call, as job_claim is: a generic plan cached while the table was small (after a
-- purge, or a VACUUM of an empty table) would stay on as it grows, and its claim cannot see the LIMIT.
-- Each event's stream position (`tx`) is the greater of this transaction's id and the job's previous event's
-- (sql/0017: per job, the stream order is version order).
-- The jobs completed are held (claimed or running) and the jobs claimed pending, so the two updates never meet a
-- row twice; completions lock their rows in id order (concurrent batches cannot deadlock), the claim skips locks.
-- An external job is never held: job_complete_many's rule for them (a pending one counts as claimed) is not here,
-- so a worker's group commit refuses one (it never claimed it).
-- Sequential scans off: see job_complete_many.
CREATE OR REPLACE FUNCTION job_complete_claim(p_worker text, p_ids uuid[], p_results text[], p_messages text[],
  p_from text[], p_queues text[], p_names text[], p_limit integer, p_lease_ms integer, p_now timestamptz)
RETURNS json LANGUAGE plpgsql SET search_path FROM CURRENT SET plan_cache_mode = force_custom_plan
  SET enable_seqscan = off AS $$
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  answer json;
BEGIN
  WITH input AS (
    SELECT * FROM unnest(p_ids, p_results, p_messages) AS i(id, result, message)
  ), cur AS (
    SELECT j.id, j.status, j.worker_id, j.progress_percent FROM jobs j
    WHERE j.id IN (SELECT id FROM input) ORDER BY j.id FOR UPDATE
  ), upd AS (
    -- what job_transition's complete sets
    UPDATE jobs j SET status = 'completed', version = j.version + 1, updated_at = now(),
      result = i.result::jsonb, finished_at = now(), lease_expires_at = NULL, progress_percent = 100,
      cancel_requested = false, event_tx = greatest(j.event_tx, pg_current_xact_id())
    FROM cur JOIN input i ON i.id = cur.id
    WHERE j.id = cur.id AND cur.status = ANY (p_from) AND (p_worker IS NULL OR cur.worker_id = p_worker)
    RETURNING j.*, cur.status AS previous_status, cur.progress_percent AS previous_progress,
      i.message AS event_message
  ), w AS (
    SELECT w.id FROM workers w WHERE p_limit > 0 AND w.id = p_worker
  ), cand AS (
    -- job_claim's candidates: the first of each queue in jobs_claim_order, then the first of those
    SELECT x.id FROM (SELECT DISTINCT unnest(p_queues) AS queue WHERE p_limit > 0 AND EXISTS (SELECT 1 FROM w)) q
    CROSS JOIN LATERAL (
      SELECT c.id, c.priority FROM jobs c
      WHERE c.status = 'pending' AND NOT c.external AND c.job_type_id IS NULL AND c.queue = q.queue AND (p_names IS NULL OR c.name = ANY (p_names))
      ORDER BY c.priority DESC, c.id
      LIMIT greatest(p_limit, 0)
      FOR UPDATE SKIP LOCKED
    ) x
    ORDER BY x.priority DESC, x.id
    LIMIT greatest(p_limit, 0)
  ), claimed AS (
    -- what job_claim sets with p_start
    UPDATE jobs j SET status = 'running', version = j.version + 1, updated_at = now(), attempt = j.attempt + 1,
      worker_id = p_worker, lease_expires_at = v_now + p_lease_ms * interval '1 millisecond', claimed_at = v_now,
      started_at = v_now, cancel_requested = false, event_tx = greatest(j.event_tx, pg_current_xact_id())
    FROM cand WHERE j.id = cand.id
    RETURNING j.*
  ), ev AS (
    -- one INSERT for both, so that the event triggers fire once for the statement
    INSERT INTO job_events (job_id, version, type, status, previous_status, progress, previous_progress, step,
      message, attempt, tx)
    SELECT id, version, 'job.status.changed', status, previous_status, progress_percent, previous_progress,
      progress_step, event_message, attempt, event_tx
    FROM upd
    UNION ALL
    SELECT c.id, c.version, 'job.status.changed', c.status, 'pending', c.progress_percent, c.progress_percent,
      c.progress_step, NULL, c.attempt, c.event_tx
    FROM claimed c
    RETURNING *
  )
  SELECT json_build_object(
    'answers', (
      SELECT json_agg(json_build_object('id', cur.id, 'foundStatus', cur.status, 'foundWorker', cur.worker_id,
        'event', CASE WHEN e.job_id IS NULL THEN NULL ELSE row_to_json(e) END, 'result', u.result,
        'queue', u.queue, 'runSeconds', extract(epoch FROM u.finished_at - u.claimed_at)::float8,
        'artefacts', u.artefacts))
      FROM cur LEFT JOIN upd u ON u.id = cur.id LEFT JOIN ev e ON e.job_id = u.id AND e.version = u.version
    ),
    'claimed', (SELECT json_agg(row_to_json(c) ORDER BY c.priority DESC, c.id) FROM claimed c)
  )
  INTO answer;
  RETURN answer;
END
$$;
