-- Workers, leases, retries with backoff, and progress milestones.

-- The workers that claim jobs: what they serve and when they were last heard of. A worker's lease length follows
-- its heartbeat interval (1.5 ×), so that a dead worker's job is back in the queue within 2 × that interval.
CREATE TABLE workers (
  id text PRIMARY KEY,
  queues text[] NOT NULL,
  names text[],
  heartbeat_interval_ms bigint NOT NULL CHECK (heartbeat_interval_ms > 0),
  lease_ms bigint NOT NULL CHECK (lease_ms > 0),
  registered_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL
);
CREATE INDEX workers_last_seen ON workers (last_seen_at);

-- Per-job retry backoff: min(max, base × multiplier^(attempt - 1)), jittered (see the retry statements).
ALTER TABLE jobs
  ADD COLUMN backoff_base_ms bigint NOT NULL DEFAULT 1000 CHECK (backoff_base_ms >= 0),
  ADD COLUMN backoff_max_ms bigint NOT NULL DEFAULT 3600000 CHECK (backoff_max_ms >= 0),
  ADD COLUMN backoff_multiplier double precision NOT NULL DEFAULT 2 CHECK (backoff_multiplier >= 1),
  -- the percent of the last progress event marked as a milestone (NULL: none yet)
  ADD COLUMN progress_marked double precision;

-- A worker's held jobs (heartbeats, cancel requests, shutdown release) and every held job (timeouts).
CREATE INDEX jobs_held ON jobs (worker_id) WHERE status IN ('claimed', 'running');

-- The trigger also tells waiting claimers which queues just got a ready job: the channel "<schema>.ready" carries
-- the distinct queue names of the statement's jobs that became pending (comma-separated; '*' when they would not
-- fit in one notification). And it tells workers at once which jobs got a cancel request: the channel
-- "<schema>.cancel" carries their ids (comma-separated; '*' when too many: ask the heartbeat).
CREATE OR REPLACE FUNCTION job_events_doorbell() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  channel text := TG_TABLE_SCHEMA || '.doorbell';
  outcomes text := TG_TABLE_SCHEMA || '.outcome';
  ready text;
  canceling text;
BEGIN
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
