-- Inserts jobs and their first events (version 1). `p_jobs` is a JSON array of the new jobs (see JobsRepo.insert);
-- with `p_keyed` (some job has an idempotency key) a job whose key is taken already (same owner) is skipped: without
-- keys nothing can conflict, and a plain insert skips the speculative-insertion protocol. The statement is parsed per
-- call as the ad-hoc statement it replaces was (one text for both forms). Answers the jobs inserted, in no order,
-- timestamps as epoch milliseconds (2,000 timestamps parsed per batch were a visible share of its time). The first
-- events' ids come with the jobs: the SQL uuid_v7() cost about 3 ms per 1,000.
CREATE OR REPLACE FUNCTION job_enqueue(p_jobs jsonb, p_keyed boolean)
RETURNS TABLE (id uuid, status text, scheduled_at double precision, created_at double precision)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  RETURN QUERY EXECUTE format($q$
    WITH input AS (
      SELECT x.*, coalesce(x.run_at, now() + x.delay_ms * interval '1 millisecond', now()) AS due
      FROM jsonb_to_recordset($1) AS x(
        id uuid, event_id uuid, queue text, name text, owner text, payload jsonb, priority int,
        run_at timestamptz, delay_ms float8, max_attempts int, timeout_ms bigint, idempotency_key text,
        backoff_base_ms bigint, backoff_max_ms bigint, backoff_multiplier float8, webhook_url text, webhook_secret text)
    ), ins AS (
      INSERT INTO jobs (id, queue, name, owner, payload, priority, status, max_attempts, timeout_ms,
        idempotency_key, scheduled_at, backoff_base_ms, backoff_max_ms, backoff_multiplier, webhook_url,
        webhook_secret, event_tx)
      SELECT id, queue, name, owner, coalesce(payload, 'null'::jsonb), priority,
        CASE WHEN due > now() THEN 'scheduled' ELSE 'pending' END, max_attempts, timeout_ms,
        idempotency_key, due, backoff_base_ms, backoff_max_ms, backoff_multiplier, webhook_url, webhook_secret,
        pg_current_xact_id()
      FROM input
      %s
      RETURNING id, status, scheduled_at, created_at
    ), ev AS (
      INSERT INTO job_events (job_id, version, id, type, status)
      SELECT ins.id, 1, input.event_id, 'job.status.changed', ins.status FROM ins JOIN input USING (id)
    )
    SELECT id, status, floor(extract(epoch FROM scheduled_at) * 1000)::float8,
      floor(extract(epoch FROM created_at) * 1000)::float8
    FROM ins$q$,
    CASE WHEN p_keyed THEN 'ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING'
      ELSE '' END)
  USING p_jobs;
END
$$;
