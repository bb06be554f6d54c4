-- Fans each new event out to the matching active endpoints of its job's owner (and to the job's own callback for
-- completion and failure), in the event's transaction, then rings "<schema>.webhooks" for the deliverers. A delivery
-- row names only the endpoint and the event (job, version): its body is rendered from the event's envelope when it
-- is delivered. Webhooks carry transitions, and progress at milestones (0, 25, 50, 75, 100 or a ≥ 10-point move);
-- an endpoint subscribes to progress, completed, failed, canceled, or all of them and every other transition.
CREATE OR REPLACE FUNCTION job_events_webhooks() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  added integer;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
    RETURN NULL;
  END IF;
  -- a constant-cost shortcut for an installation without any active endpoint and no finished job with its own
  -- callback (one probe of the partial index, whatever the number of tenants)
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE active)
     AND NOT EXISTS (
       SELECT 1 FROM new_rows n JOIN jobs j ON j.id = n.job_id
       WHERE n.type = 'job.status.changed' AND n.status IN ('completed', 'failed') AND j.webhook_url IS NOT NULL
     ) THEN
    RETURN NULL;
  END IF;
  WITH events AS MATERIALIZED (
    SELECT n.id, n.job_id, n.version, n.type, n.status, j.owner, j.webhook_url
    FROM new_rows n JOIN jobs j ON j.id = n.job_id
    WHERE n.type = 'job.status.changed' OR (n.type = 'job.progress' AND n.milestone)
  ), owners AS (
    SELECT DISTINCT owner FROM events WHERE owner IS NOT NULL
  ), endpoints AS (
    -- only the statement's owners' endpoints, one probe of webhook_endpoints_active (owner) each
    SELECT w.id, w.owner, w.url, w.event_types
    FROM owners o CROSS JOIN LATERAL (
      SELECT x.id, x.owner, x.url, x.event_types FROM webhook_endpoints x WHERE x.owner = o.owner AND x.active
    ) w
  ), matched AS (
    SELECT e.id, e.job_id, e.version, e.owner, w.id AS endpoint_id, w.url AS target
    FROM events e JOIN endpoints w ON w.owner = e.owner
    WHERE 'all' = ANY(w.event_types)
      OR (e.type = 'job.progress' AND 'progress' = ANY(w.event_types))
      OR (e.type = 'job.status.changed' AND e.status IN ('completed', 'failed', 'canceled')
        AND e.status = ANY(w.event_types))
    UNION ALL
    SELECT e.id, e.job_id, e.version, e.owner, NULL, e.webhook_url
    FROM events e
    WHERE e.webhook_url IS NOT NULL AND e.type = 'job.status.changed' AND e.status IN ('completed', 'failed')
  ), inserted AS (
    INSERT INTO webhook_deliveries (endpoint_id, url, owner, event_id, job_id, version)
    SELECT m.endpoint_id, m.target, m.owner, m.id, m.job_id, m.version
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
