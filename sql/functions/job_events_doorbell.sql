-- The notifications of every statement that writes events, sent at its commit (latency hints only, never the
-- truth), in this order:
--   "<schema>.cancel"   ids of jobs that just got a cancel request (comma-separated; '*' when too many)
--   "<schema>.ready"    the distinct queues of jobs that just became pending (comma-separated; '*' when too many);
--                       a task (a job with a job type) as '@type:<job type id>', for the workers serving its type
--   "<schema>.doorbell" what changed, in one payload per chunk under 8000 bytes (one for a statement of up to about
--                       a hundred small outcomes or 200 jobs), items separated by commas:
--                         '#'               first: this shape (src/EventLog/Doorbell.ts reads it)
--                         'job_id:version'  every changed job, at its highest version
--                         '!job_id'         the job's change is terminal and its outcome is not in this payload
--                                           (over 3900 bytes): waiters read it
--                         '[...]'           last: the terminal outcomes (job_outcome_json) of this chunk's jobs,
--                                           as a JSON array, so that waiters resolve without a read
--                       or '*' ("reconcile everything") when a statement changed more than 3000 jobs.
-- One NOTIFY per statement where it fits, not an outcome one and a doorbell one: each NOTIFY serializes committers
-- on one lock. A reader of the shape before it (pairs only, outcomes on "<schema>.outcome") skips the '#', '!' and
-- JSON items (none looks like a pair of a watched job), so it still reads every change, without the outcomes.
-- A single event (the common case) costs one read of the event and its job; a statement of many takes the
-- set-based path. SET search_path FROM CURRENT: it reads "jobs" of its own schema whatever the session's path.
CREATE OR REPLACE FUNCTION job_events_doorbell() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  channel text := TG_TABLE_SCHEMA || '.doorbell';
  ready text;
  canceling text;
  one record;
  outcome text;
  payload text;
  firsts integer;
BEGIN
  -- a statement that wrote no event (a claim that found nothing) rings nothing, and costs one probe, not the
  -- set-based path's half a millisecond of empty queries
  SELECT count(*) INTO firsts FROM (SELECT 1 FROM new_rows LIMIT 2) AS f;
  IF firsts = 0 THEN
    RETURN NULL;
  END IF;
  IF firsts = 1 THEN
    SELECT n.job_id, n.version, n.type, n.status, n.error_code, n.error_message, n.created_at, j.queue, j.result,
      j.external, j.job_type_id
    INTO one
    FROM new_rows n LEFT JOIN jobs j ON j.id = n.job_id;
    payload := '#,' || one.job_id::text || ':' || one.version;
    IF one.type = 'job.cancel_requested' THEN
      PERFORM pg_notify(TG_TABLE_SCHEMA || '.cancel', one.job_id::text);
    END IF;
    IF one.queue IS NOT NULL AND one.type = 'job.status.changed' THEN
      -- an external job is never claimed: its pending wakes no claimer
      IF one.status = 'pending' AND NOT one.external THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '.ready',
          CASE WHEN one.job_type_id IS NULL THEN one.queue ELSE '@type:' || one.job_type_id END);
      ELSIF job_is_terminal(one.status) THEN
        outcome := job_outcome_json(one.job_id, one.version, one.status, one.result, one.error_code,
          one.error_message, one.created_at)::text;
        payload := payload || CASE WHEN octet_length(outcome) <= 3900 THEN ',[' || outcome || ']'
          ELSE ',!' || one.job_id::text END;
      END IF;
    END IF;
    PERFORM pg_notify(channel, payload);
    RETURN NULL;
  END IF;
  SELECT string_agg(job_id::text, ',') INTO canceling FROM new_rows WHERE type = 'job.cancel_requested';
  IF canceling IS NOT NULL THEN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.cancel', CASE WHEN octet_length(canceling) > 7900 THEN '*' ELSE canceling END);
  END IF;
  SELECT string_agg(DISTINCT CASE WHEN j.job_type_id IS NULL THEN j.queue ELSE '@type:' || j.job_type_id END, ',')
  INTO ready
  FROM new_rows n JOIN jobs j ON j.id = n.job_id
  WHERE n.status = 'pending' AND n.type = 'job.status.changed' AND NOT j.external;
  IF ready IS NOT NULL THEN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.ready', CASE WHEN octet_length(ready) > 7900 THEN '*' ELSE ready END);
  END IF;
  IF (SELECT count(*) FROM new_rows) > 3000 AND (SELECT count(DISTINCT job_id) FROM new_rows) > 3000 THEN
    PERFORM pg_notify(channel, '*');
    RETURN NULL;
  END IF;
  -- a job's items (its pair, its flag, its outcome of at most 3900 bytes) weigh under 4000 bytes, and chunks are
  -- numbered every 3900 bytes: a chunk stays under 7900 bytes plus its '#' and brackets
  PERFORM pg_notify(channel,
    '#,' || string_agg(entry, ',' ORDER BY job_id) || coalesce(',[' || string_agg(carried, ',' ORDER BY job_id) || ']', ''))
  FROM (
    SELECT job_id, entry, carried,
      (sum(octet_length(entry) + 1 + coalesce(octet_length(carried) + 1, 0))
        OVER (ORDER BY job_id ROWS UNBOUNDED PRECEDING) - 1) / 3900 AS chunk
    FROM (
      SELECT c.job_id,
        c.job_id::text || ':' || c.version || CASE WHEN octet_length(t.item) > 3900 THEN ',!' || c.job_id::text ELSE '' END
          AS entry,
        CASE WHEN octet_length(t.item) <= 3900 THEN t.item END AS carried
      FROM (SELECT job_id, max(version) AS version FROM new_rows GROUP BY job_id) AS c
      LEFT JOIN (
        SELECT DISTINCT ON (n.job_id) n.job_id,
          job_outcome_json(n.job_id, n.version, n.status, j.result, n.error_code, n.error_message, n.created_at)::text
            AS item
        FROM new_rows n JOIN jobs j ON j.id = n.job_id
        WHERE n.type = 'job.status.changed' AND job_is_terminal(n.status)
        ORDER BY n.job_id, n.version DESC
      ) AS t ON t.job_id = c.job_id
    ) AS items
  ) AS numbered
  GROUP BY chunk;
  RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER job_events_doorbell AFTER INSERT ON job_events
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION job_events_doorbell();
