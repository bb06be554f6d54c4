-- Completes the jobs `p_ids` (results `p_results` as JSON text, event messages `p_messages`, by position) that are
-- in one of `p_from` and, when `p_worker` is given, held by it. Answers a JSON array with one item per job found:
-- `{id, foundStatus, foundWorker, event, result}`, `event` (as `row_to_json` writes it) and `result` null for a
-- job that was not completed; null when no job was found. The rule is job_complete_claim's, claiming nothing.
CREATE OR REPLACE FUNCTION job_complete_many(p_worker text, p_ids uuid[], p_results text[], p_messages text[], p_from text[])
RETURNS json LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  RETURN job_complete_claim(p_worker, p_ids, p_results, p_messages, p_from, NULL, NULL, 0, NULL, NULL) -> 'answers';
END
$$;
