-- Attaches the artefacts `p_artefacts` (a JSON array of `{name, url, contentType, size, checksum}`, checked and
-- made unique by name by the caller) to job `p_id`, which must be claimed or running (held by `p_worker` when
-- given) or, for an external job (job_transition's rule), pending too, by any worker. An artefact of a name the job
-- has already replaces that one in place; the others are appended, in order. With `p_event` the job moves to its
-- next version and a `job.progress` event (progress unchanged, not a milestone, `data` `{artefacts}`: the ones
-- attached) tells it; without, only the list changes, and the caller's transaction ends the job next (completion
-- or failure) with the version and the event that carry the list. A list longer than `p_max` after the merge
-- changes nothing. Answers as job_progress does (null when the job does not exist; `{foundStatus, foundWorker,
-- foundExternal}`, and `job` and `event` when written), and `count`, the merged list's length, when too long.
-- Sequential scans off: see job_complete_many.
CREATE OR REPLACE FUNCTION job_attach(p_id uuid, p_worker text, p_artefacts jsonb, p_max integer, p_event boolean)
RETURNS json LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  cur record;
  merged jsonb;
  changed jobs;
  written job_events;
BEGIN
  SELECT status, worker_id, progress_percent, external, artefacts INTO cur FROM jobs WHERE id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF NOT (cur.status IN ('claimed', 'running') OR (cur.external AND cur.status = 'pending'))
    OR (p_worker IS NOT NULL AND NOT cur.external AND cur.worker_id IS DISTINCT FROM p_worker) THEN
    RETURN json_build_object('foundStatus', cur.status, 'foundWorker', cur.worker_id, 'foundExternal', cur.external);
  END IF;
  SELECT coalesce(jsonb_agg(coalesce(n.a, o.a) ORDER BY o.ord NULLS LAST, n.ord), '[]'::jsonb) INTO merged
  FROM (SELECT x.a, x.ord FROM jsonb_array_elements(cur.artefacts) WITH ORDINALITY AS x(a, ord)) o
  FULL JOIN (SELECT y.a, y.ord FROM jsonb_array_elements(p_artefacts) WITH ORDINALITY AS y(a, ord)) n
    ON o.a ->> 'name' = n.a ->> 'name';
  IF jsonb_array_length(merged) > p_max THEN
    RETURN json_build_object('foundStatus', cur.status, 'foundWorker', cur.worker_id, 'foundExternal', cur.external,
      'count', jsonb_array_length(merged));
  END IF;
  IF NOT p_event THEN
    UPDATE jobs SET artefacts = merged WHERE id = p_id RETURNING * INTO changed;
    RETURN json_build_object('foundStatus', cur.status, 'foundWorker', cur.worker_id, 'foundExternal', cur.external,
      'job', row_to_json(changed));
  END IF;
  UPDATE jobs SET artefacts = merged, version = version + 1, updated_at = now(),
    event_tx = greatest(event_tx, pg_current_xact_id())
  WHERE id = p_id RETURNING * INTO changed;
  INSERT INTO job_events (job_id, version, type, status, previous_status, progress, previous_progress, step,
    message, attempt, milestone, data, tx)
  VALUES (changed.id, changed.version, 'job.progress', changed.status, cur.status, changed.progress_percent,
    cur.progress_percent, changed.progress_step, NULL, changed.attempt, false,
    jsonb_build_object('artefacts', p_artefacts), changed.event_tx)
  RETURNING * INTO written;
  RETURN json_build_object('foundStatus', cur.status, 'foundWorker', cur.worker_id, 'foundExternal', cur.external,
    'job', row_to_json(changed), 'event', row_to_json(written));
END
$$;
