-- The notifications of every statement that writes events, sent at its commit (latency hints only, never the
-- truth), in this order:
--   "<schema>.cancel"   ids of jobs that just got a cancel request (comma-separated; '*' when too many)
--   "<schema>.ready"    the distinct queues of jobs that just became pending (comma-separated; '*' when too many)
--   "<schema>.outcome"  terminal outcomes (job_outcome_json) of at most 3900 bytes, as a JSON array, so that waiters
--                       resolve without a read (larger ones only ring the doorbell)
--   "<schema>.doorbell" "job_id:version" pairs (the highest version per job), comma-separated, in chunks under 8000
--                       bytes; '*' ("reconcile everything") when a statement changed more than 3000 jobs
-- A single event (the common case) costs one read of the event and its job; a statement of many takes the
-- set-based path. SET search_path FROM CURRENT: it reads "jobs" of its own schema whatever the session's path.
CREATE OR REPLACE FUNCTION job_events_doorbell() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  channel text := TG_TABLE_SCHEMA || '.doorbell';
  outcomes text := TG_TABLE_SCHEMA || '.outcome';
  ready text;
  canceling text;
  one record;
  outcome text;
BEGIN
  IF (SELECT count(*) FROM (SELECT 1 FROM new_rows LIMIT 2) AS firsts) = 1 THEN
    SELECT n.job_id, n.version, n.type, n.status, n.error_code, n.error_message, n.created_at, j.queue, j.result
    INTO one
    FROM new_rows n LEFT JOIN jobs j ON j.id = n.job_id;
    IF one.type = 'job.cancel_requested' THEN
      PERFORM pg_notify(TG_TABLE_SCHEMA || '.cancel', one.job_id::text);
    END IF;
    IF one.queue IS NOT NULL AND one.type = 'job.status.changed' THEN
      IF one.status = 'pending' THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '.ready', one.queue);
      ELSIF job_is_terminal(one.status) THEN
        outcome := job_outcome_json(one.job_id, one.version, one.status, one.result, one.error_code,
          one.error_message, one.created_at)::text;
        IF octet_length(outcome) <= 3900 THEN
          PERFORM pg_notify(outcomes, '[' || outcome || ']');
        END IF;
      END IF;
    END IF;
    PERFORM pg_notify(channel, one.job_id::text || ':' || one.version);
    RETURN NULL;
  END IF;
  SELECT string_agg(job_id::text, ',') INTO canceling FROM new_rows WHERE type = 'job.cancel_requested';
  IF canceling IS NOT NULL THEN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.cancel', CASE WHEN octet_length(canceling) > 7900 THEN '*' ELSE canceling END);
  END IF;
  SELECT string_agg(DISTINCT j.queue, ',') INTO ready
  FROM new_rows n JOIN jobs j ON j.id = n.job_id
  WHERE n.status = 'pending' AND n.type = 'job.status.changed';
  IF ready IS NOT NULL THEN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.ready', CASE WHEN octet_length(ready) > 7900 THEN '*' ELSE ready END);
  END IF;
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
      SELECT n.job_id, job_outcome_json(n.job_id, n.version, n.status, j.result, n.error_code, n.error_message,
          n.created_at)::text AS item
      FROM new_rows n JOIN jobs j ON j.id = n.job_id
      WHERE n.type = 'job.status.changed' AND job_is_terminal(n.status)
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

CREATE OR REPLACE TRIGGER job_events_doorbell AFTER INSERT ON job_events
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION job_events_doorbell();
