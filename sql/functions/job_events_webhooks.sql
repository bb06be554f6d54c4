-- The webhook type of an event: job.progress (milestones and ≥ 10-point moves only), job.completed, job.failed,
-- job.canceled, or job.status.changed for the other transitions; null when no webhook carries it.
CREATE OR REPLACE FUNCTION webhook_type(event_type text, status text, milestone boolean) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN event_type = 'job.progress' THEN CASE WHEN milestone THEN 'job.progress' END
    WHEN event_type = 'job.status.changed' THEN
      CASE WHEN status IN ('completed', 'failed', 'canceled') THEN 'job.' || status ELSE 'job.status.changed' END
  END
$$;

-- Fans each new event out to the matching active endpoints of its job's owner (and to the job's own callback for
-- completion and failure), in the event's transaction, then rings "<schema>.webhooks" for the deliverers.
CREATE OR REPLACE FUNCTION job_events_webhooks() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  added integer;
BEGIN
  -- the common case costs one probe: no active endpoint anywhere, and no finished job with its own callback
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE active)
     AND NOT EXISTS (
       SELECT 1 FROM new_rows n JOIN jobs j ON j.id = n.job_id
       WHERE n.type = 'job.status.changed' AND n.status IN ('completed', 'failed') AND j.webhook_url IS NOT NULL
     ) THEN
    RETURN NULL;
  END IF;
  WITH events AS (
    SELECT n.*, webhook_type(n.type, n.status, n.milestone) AS hook, j.owner, j.name, j.result, j.webhook_url
    FROM new_rows n JOIN jobs j ON j.id = n.job_id
  ), matched AS (
    SELECT e.*, w.id AS endpoint_id, w.url AS target
    FROM events e JOIN webhook_endpoints w ON w.owner = e.owner AND w.active
    WHERE e.hook IS NOT NULL AND (
      'all' = ANY(w.event_types)
      OR (e.hook = 'job.progress' AND 'progress' = ANY(w.event_types))
      OR (e.hook IN ('job.completed', 'job.failed', 'job.canceled') AND substr(e.hook, 5) = ANY(w.event_types))
    )
    UNION ALL
    SELECT e.*, NULL, e.webhook_url
    FROM events e
    WHERE e.webhook_url IS NOT NULL AND e.hook IN ('job.completed', 'job.failed')
  ), inserted AS (
    INSERT INTO webhook_deliveries (endpoint_id, url, owner, event_id, job_id, version, type, body)
    SELECT m.endpoint_id, m.target, m.owner, m.id, m.job_id, m.version, m.hook,
      jsonb_build_object(
        'type', m.hook,
        'timestamp', to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'data', jsonb_build_object(
          'jobId', m.job_id, 'jobName', m.name, 'owner', m.owner, 'status', m.status,
          'previousStatus', m.previous_status, 'progress', m.progress, 'previousProgress', m.previous_progress,
          'attempt', m.attempt, 'version', m.version, 'step', m.step, 'message', m.message
        )
        || CASE WHEN m.hook = 'job.completed' THEN jsonb_build_object('result', coalesce(m.result, 'null'::jsonb)) ELSE '{}' END
        || CASE WHEN m.hook = 'job.failed'
             THEN jsonb_build_object('error', jsonb_build_object('code', m.error_code, 'message', m.error_message))
             ELSE '{}' END
      )::jsonb
    FROM matched m
    ON CONFLICT DO NOTHING
    RETURNING 1
  )
  SELECT count(*) INTO added FROM inserted;
  IF added > 0 THEN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.webhooks', '');
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER job_events_webhooks AFTER INSERT ON job_events
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_events_webhooks();
