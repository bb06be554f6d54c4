-- The end of an attempt that did not succeed, once, for the single path (job_transition's attempt_failed) and the
-- set-based one (job_bulk's expired leases and timeouts): another attempt follows when it may be retried and
-- attempts remain, 'scheduled' after `delay_ms` (see job_retry_delay_ms) or 'pending' at once when that is 0;
-- else 'failed' for good. Plain SQL, inlined into the statements that use it.
CREATE OR REPLACE FUNCTION job_attempt_end(retryable boolean, attempt integer, max_attempts integer,
  delay_ms double precision) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN NOT (retryable AND attempt < max_attempts) THEN 'failed' WHEN delay_ms > 0 THEN 'scheduled'
    ELSE 'pending' END
$$;
