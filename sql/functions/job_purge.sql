-- Removes finished jobs (completed, failed, canceled, deleted) with their events (no foreign key since 0003) and
-- their webhook deliveries (and so their attempts): at most p_limit of them, oldest finished first. p_ids: only
-- these jobs (their locks are waited for); otherwise jobs that another transaction holds are skipped. p_before:
-- only jobs finished before it; p_owner, p_statuses, p_queue narrow further (null: any). Answers each job removed,
-- with its status and how many events went with it. Every purge goes through here.
-- It writes no event: it rings the doorbell of each job removed at a version past its last, so that a process
-- still watching one reads it, finds it gone and ends its waiters and streams at once (not at its next refresh).
CREATE OR REPLACE FUNCTION job_purge(
  p_limit integer,
  p_before timestamptz DEFAULT NULL,
  p_ids uuid[] DEFAULT NULL,
  p_owner text DEFAULT NULL,
  p_statuses text[] DEFAULT NULL,
  p_queue text DEFAULT NULL
) RETURNS TABLE (id uuid, status text, events integer)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
  doomed uuid[];
  ids uuid[];
  statuses text[];
  versions integer[];
BEGIN
  -- two statements, not one with "p_ids IS NULL OR …": a cached generic plan must still use the right index
  IF p_ids IS NOT NULL THEN
    SELECT array_agg(x.id) INTO doomed FROM (
      SELECT j.id FROM jobs j
      WHERE j.id = ANY(p_ids) AND j.status IN ('completed', 'failed', 'canceled', 'deleted')
        AND j.finished_at < coalesce(p_before, 'infinity')
        AND (p_owner IS NULL OR j.owner = p_owner) AND (p_statuses IS NULL OR j.status = ANY(p_statuses))
        AND (p_queue IS NULL OR j.queue = p_queue)
      ORDER BY j.id LIMIT p_limit FOR UPDATE
    ) AS x;
  ELSE
    SELECT array_agg(x.id) INTO doomed FROM (
      SELECT j.id FROM jobs j
      WHERE j.status IN ('completed', 'failed', 'canceled', 'deleted')
        AND j.finished_at < coalesce(p_before, 'infinity')
        AND (p_owner IS NULL OR j.owner = p_owner) AND (p_statuses IS NULL OR j.status = ANY(p_statuses))
        AND (p_queue IS NULL OR j.queue = p_queue)
      ORDER BY j.finished_at LIMIT p_limit FOR UPDATE SKIP LOCKED
    ) AS x;
  END IF;
  IF doomed IS NULL THEN
    RETURN;
  END IF;
  DELETE FROM job_events e WHERE e.job_id = ANY(doomed);
  DELETE FROM webhook_deliveries d WHERE d.job_id = ANY(doomed);
  WITH gone AS (
    DELETE FROM jobs j WHERE j.id = ANY(doomed) RETURNING j.id, j.status, j.version
  )
  SELECT array_agg(g.id ORDER BY g.id), array_agg(g.status ORDER BY g.id), array_agg(g.version ORDER BY g.id)
  INTO ids, statuses, versions
  FROM gone g;
  -- "job_id:version" pairs of at most 48 bytes, 150 to a notification: under the 8000-byte payload limit
  PERFORM pg_notify(current_schema() || '.doorbell', string_agg(u.id::text || ':' || (u.version + 1), ','))
  FROM unnest(ids, versions) WITH ORDINALITY AS u(id, version, n)
  GROUP BY (u.n - 1) / 150;
  RETURN QUERY SELECT u.id, u.status, u.version FROM unnest(ids, statuses, versions) AS u(id, status, version);
END
$$;
