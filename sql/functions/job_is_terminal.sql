-- The terminal statuses, once: a job in one of them never changes again. Plain SQL, inlined where it is used.
CREATE OR REPLACE FUNCTION job_is_terminal(status text) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT status IN ('completed', 'failed', 'canceled', 'deleted')
$$;
