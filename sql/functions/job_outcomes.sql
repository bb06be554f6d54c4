-- The current outcomes (job_outcome_json) of the jobs `p_ids` that exist: the waiters' snapshot read. Sequential
-- scans off, as job_complete_many: the read of a thousand ids was planned as a scan of the whole table whenever its
-- statistics were older than its rows.
CREATE OR REPLACE FUNCTION job_outcomes(p_ids uuid[]) RETURNS SETOF json LANGUAGE sql STABLE
SET search_path FROM CURRENT SET enable_seqscan = off AS $$
  SELECT job_outcome_json(j.id, j.version, j.status, j.result, j.error_code, j.error_message, j.finished_at)
  FROM jobs j WHERE j.id = ANY (p_ids)
$$;
