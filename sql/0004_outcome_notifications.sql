-- Terminal outcomes ride along with the doorbell. A waiter needs a finished job's status, result and error, and
-- those never change once the job is terminal: when they are small, the trigger sends them on the channel
-- "<schema>.outcome" (a JSON array, chunked under 8000 bytes), before the doorbell of the same statement, so a
-- waiter in another process resolves without a read. Larger ones (over 3900 bytes) only ring the doorbell and
-- are read as before; a lost outcome notification is covered like a lost doorbell (reconcile, refresh).
-- SET search_path FROM CURRENT: the function reads "jobs" of its own schema whatever the session's path.
CREATE OR REPLACE FUNCTION job_events_doorbell() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  channel text := TG_TABLE_SCHEMA || '.doorbell';
  outcomes text := TG_TABLE_SCHEMA || '.outcome';
BEGIN
  IF (SELECT count(*) FROM new_rows) > 3000 AND (SELECT count(DISTINCT job_id) FROM new_rows) > 3000 THEN
    PERFORM pg_notify(channel, '*');
    RETURN NULL;
  END IF;
  -- items of at most 3900 bytes in chunks numbered every 3900 bytes: a chunk stays under 7800 bytes plus brackets
  PERFORM pg_notify(outcomes, '[' || string_agg(item, ',' ORDER BY job_id) || ']')
  FROM (
    SELECT job_id, item,
      (sum(octet_length(item) + 1) OVER (ORDER BY job_id ROWS UNBOUNDED PRECEDING) - 1) / 3900 AS chunk
    FROM (
      SELECT n.job_id, json_build_object(
          'id', n.job_id, 'version', n.version, 'status', n.status,
          'result', CASE WHEN n.status = 'completed' THEN j.result END,
          'errorCode', n.error_code, 'errorMessage', n.error_message, 'at', n.created_at)::text AS item
      FROM new_rows n JOIN jobs j ON j.id = n.job_id
      WHERE n.type = 'job.status.changed' AND n.status IN ('completed', 'failed', 'canceled', 'deleted')
    ) AS terminal
    WHERE octet_length(item) <= 3900
  ) AS numbered
  GROUP BY chunk;
  PERFORM pg_notify(channel, string_agg(pair, ',' ORDER BY job_id))
  FROM (
    SELECT job_id, pair,
      (sum(octet_length(pair) + 1) OVER (ORDER BY job_id ROWS UNBOUNDED PRECEDING) - 1) / 7900 AS chunk
    FROM (SELECT job_id, job_id::text || ':' || max(version) AS pair FROM new_rows GROUP BY job_id) AS pairs
  ) AS numbered
  GROUP BY chunk;
  RETURN NULL;
END
$$;
