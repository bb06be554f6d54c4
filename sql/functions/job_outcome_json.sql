-- A job's outcome as JSON, once, for the outcome notification (job_events_doorbell) and the outcomes read (the
-- waiters' snapshot): `{id, version, status, result, errorCode, errorMessage, at}`, `result` for a completed job
-- only, `at` when it finished (null while it has not). Decoded by src/EventLog/Outcome.ts.
CREATE OR REPLACE FUNCTION job_outcome_json(id uuid, version integer, status text, result jsonb, error_code text,
  error_message text, at timestamptz) RETURNS json LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT json_build_object('id', id, 'version', version, 'status', status,
    'result', CASE WHEN status = 'completed' THEN result END, 'errorCode', error_code, 'errorMessage', error_message,
    'at', at)
$$;
