-- Inserts jobs and their first events (version 1), in one statement. The new jobs arrive as one array per column,
-- zipped by unnest (see JobsRepo.insert): typed arrays are read without a JSON parse, and a 1,000-job batch no longer
-- went through jsonb_to_recordset. With `p_keyed` (some job has an idempotency key) a job whose key is taken already
-- (same owner) is skipped: without keys nothing can conflict, and a plain insert skips the speculative-insertion
-- protocol. Both forms are static statements, planned once per session. The first events' ids come with the jobs
-- (the SQL uuid_v7() cost about 3 ms per 1,000). A delay arrives in whole microseconds, so the caller can tell each
-- job's due time and status from `now_us`.
-- `p_external` (null when no job is external) marks the jobs of `tracking: "external"`; `p_job_types` (null when
-- none is a task) gives a task's job type; `p_traceparents` and `p_tracestates` (null when no job has one) the
-- trace context each job was created in (sql/0022).
-- Answers one row: the transaction's now() (every job's created_at) in epoch microseconds, how many jobs were
-- inserted and, when keyed, which (1,000 answer rows decoded one by one were a visible share of a batch's time).
DROP FUNCTION IF EXISTS job_enqueue(jsonb, boolean);
DROP FUNCTION IF EXISTS job_enqueue(uuid[], uuid[], text[], text[], text[], jsonb[], integer[], timestamptz[],
  bigint[], integer[], bigint[], text[], bigint[], bigint[], double precision[], text[], text[], boolean);
DROP FUNCTION IF EXISTS job_enqueue(uuid[], uuid[], text[], text[], text[], jsonb[], integer[], timestamptz[],
  bigint[], integer[], bigint[], text[], bigint[], bigint[], double precision[], text[], text[], boolean[], boolean);

CREATE OR REPLACE FUNCTION job_enqueue(
  p_ids uuid[], p_event_ids uuid[], p_queues text[], p_names text[], p_owners text[], p_payloads jsonb[],
  p_priorities integer[], p_run_at timestamptz[], p_delay_us bigint[], p_max_attempts integer[],
  p_timeout_ms bigint[], p_keys text[], p_backoff_base_ms bigint[], p_backoff_max_ms bigint[],
  p_backoff_multipliers double precision[], p_webhook_urls text[], p_webhook_secrets text[], p_external boolean[],
  p_job_types bigint[], p_traceparents text[], p_tracestates text[], p_keyed boolean)
RETURNS TABLE (now_us bigint, inserted integer, ids uuid[])
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF p_keyed THEN
    RETURN QUERY
    WITH input AS (
      SELECT x.*, coalesce(x.run_at, now() + x.delay_us * interval '1 microsecond', now()) AS due
      FROM unnest(p_ids, p_event_ids, p_queues, p_names, p_owners, p_payloads, p_priorities, p_run_at, p_delay_us,
        p_max_attempts, p_timeout_ms, p_keys, p_backoff_base_ms, p_backoff_max_ms, p_backoff_multipliers,
        p_webhook_urls, p_webhook_secrets, p_external, p_job_types, p_traceparents, p_tracestates)
        AS x(id, event_id, queue, name, owner, payload, priority, run_at, delay_us, max_attempts, timeout_ms,
        idempotency_key, backoff_base_ms, backoff_max_ms, backoff_multiplier, webhook_url, webhook_secret, external,
        job_type_id, traceparent, tracestate)
    ), ins AS (
      INSERT INTO jobs AS j (id, queue, name, owner, payload, priority, status, max_attempts, timeout_ms,
        idempotency_key, scheduled_at, backoff_base_ms, backoff_max_ms, backoff_multiplier, webhook_url,
        webhook_secret, event_tx, external, job_type_id, traceparent, tracestate)
      SELECT i.id, i.queue, i.name, i.owner, i.payload, i.priority,
        CASE WHEN i.due > now() THEN 'scheduled' ELSE 'pending' END, i.max_attempts, i.timeout_ms,
        i.idempotency_key, i.due, i.backoff_base_ms, i.backoff_max_ms, i.backoff_multiplier, i.webhook_url,
        i.webhook_secret, pg_current_xact_id(), coalesce(i.external, false), i.job_type_id, i.traceparent, i.tracestate
      FROM input i
      ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
      RETURNING j.id, j.status
    ), ev AS (
      INSERT INTO job_events (job_id, version, id, type, status)
      SELECT ins.id, 1, input.event_id, 'job.status.changed', ins.status FROM ins JOIN input USING (id)
    )
    SELECT (extract(epoch FROM now()) * 1000000)::bigint, count(*)::integer,
      coalesce(array_agg(ins.id), '{}') FROM ins;
  ELSE
    RETURN QUERY
    WITH input AS (
      SELECT x.*, coalesce(x.run_at, now() + x.delay_us * interval '1 microsecond', now()) AS due
      FROM unnest(p_ids, p_event_ids, p_queues, p_names, p_owners, p_payloads, p_priorities, p_run_at, p_delay_us,
        p_max_attempts, p_timeout_ms, p_keys, p_backoff_base_ms, p_backoff_max_ms, p_backoff_multipliers,
        p_webhook_urls, p_webhook_secrets, p_external, p_job_types, p_traceparents, p_tracestates)
        AS x(id, event_id, queue, name, owner, payload, priority, run_at, delay_us, max_attempts, timeout_ms,
        idempotency_key, backoff_base_ms, backoff_max_ms, backoff_multiplier, webhook_url, webhook_secret, external,
        job_type_id, traceparent, tracestate)
    ), ins AS (
      INSERT INTO jobs AS j (id, queue, name, owner, payload, priority, status, max_attempts, timeout_ms,
        idempotency_key, scheduled_at, backoff_base_ms, backoff_max_ms, backoff_multiplier, webhook_url,
        webhook_secret, event_tx, external, job_type_id, traceparent, tracestate)
      SELECT i.id, i.queue, i.name, i.owner, i.payload, i.priority,
        CASE WHEN i.due > now() THEN 'scheduled' ELSE 'pending' END, i.max_attempts, i.timeout_ms,
        i.idempotency_key, i.due, i.backoff_base_ms, i.backoff_max_ms, i.backoff_multiplier, i.webhook_url,
        i.webhook_secret, pg_current_xact_id(), coalesce(i.external, false), i.job_type_id, i.traceparent, i.tracestate
      FROM input i
      RETURNING j.id, j.status
    ), ev AS (
      INSERT INTO job_events (job_id, version, id, type, status)
      SELECT ins.id, 1, input.event_id, 'job.status.changed', ins.status FROM ins JOIN input USING (id)
    )
    SELECT (extract(epoch FROM now()) * 1000000)::bigint, count(*)::integer, NULL::uuid[] FROM ins;
  END IF;
END
$$;

-- The previous signature (sql/0021's, without the trace context), kept for the processes of the previous version
-- during a rolling deploy: their enqueues go on, without a trace context, until they are replaced.
CREATE OR REPLACE FUNCTION job_enqueue(
  p_ids uuid[], p_event_ids uuid[], p_queues text[], p_names text[], p_owners text[], p_payloads jsonb[],
  p_priorities integer[], p_run_at timestamptz[], p_delay_us bigint[], p_max_attempts integer[],
  p_timeout_ms bigint[], p_keys text[], p_backoff_base_ms bigint[], p_backoff_max_ms bigint[],
  p_backoff_multipliers double precision[], p_webhook_urls text[], p_webhook_secrets text[], p_external boolean[],
  p_job_types bigint[], p_keyed boolean)
RETURNS TABLE (now_us bigint, inserted integer, ids uuid[])
LANGUAGE sql SET search_path FROM CURRENT AS $$
  SELECT * FROM job_enqueue(p_ids, p_event_ids, p_queues, p_names, p_owners, p_payloads, p_priorities, p_run_at,
    p_delay_us, p_max_attempts, p_timeout_ms, p_keys, p_backoff_base_ms, p_backoff_max_ms, p_backoff_multipliers,
    p_webhook_urls, p_webhook_secrets, p_external, p_job_types, NULL::text[], NULL::text[], p_keyed)
$$;
