-- Registers job type `p_name` for room `p_room` (or '@global'), atomically: a new one is created; one removed for
-- being orphaned is revived with the new schema; an existing one must have an equal schema (compared as JSON
-- values: `jsonb =` ignores key order and number spelling, keeps array order), else the answer is 'conflict' with
-- the schema it has, and nothing is written. Otherwise worker `p_worker` (registered now if unknown, seen now if
-- known) is linked to it: it serves the type's tasks (a new link rings '@worker:<id>' on the ready channel). Answers the type's row and the outcome: 'created',
-- 'revived', 'existing' or 'conflict', or 'limit' (nothing written) when the registration would give
-- `p_registered_by` more than `p_max_types` live types.
CREATE OR REPLACE FUNCTION job_type_register(p_room text, p_name text, p_visibility text, p_category text,
  p_short_name text, p_scope_owner text, p_schema jsonb, p_schema_digest text, p_max_attempts integer, p_registered_by text,
  p_worker text, p_heartbeat_ms integer, p_lease_ms integer, p_max_types integer, p_now timestamptz)
RETURNS TABLE (id bigint, outcome text, schema jsonb, schema_digest text, max_attempts integer, registered_by text,
  created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
  v_now timestamptz := coalesce(p_now, now());
  v_row job_types;
  v_outcome text;
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM job_types t
    WHERE t.room = p_room AND t.name = p_name AND t.scope_owner = p_scope_owner AND t.deleted_at IS NULL
  ) THEN
    -- a new (or revived) type counts against its registrant's bound: registrations of one user take turns here
    PERFORM pg_advisory_xact_lock(hashtext('jobwatch.job_types:' || p_registered_by));
    IF (SELECT count(*) FROM job_types t WHERE t.registered_by = p_registered_by AND t.deleted_at IS NULL)
        >= p_max_types THEN
      RETURN QUERY SELECT NULL::bigint, 'limit'::text, NULL::jsonb, NULL::text, NULL::integer, NULL::text,
        NULL::timestamptz, NULL::timestamptz;
      RETURN;
    END IF;
  END IF;
  INSERT INTO job_types AS t (room, name, visibility, category, short_name, scope_owner, schema, schema_digest,
    max_attempts, registered_by, created_at, updated_at)
  VALUES (p_room, p_name, p_visibility, p_category, p_short_name, p_scope_owner, p_schema, p_schema_digest,
    p_max_attempts,
    p_registered_by, v_now, v_now)
  ON CONFLICT (room, name, scope_owner) DO NOTHING
  RETURNING t.* INTO v_row;
  IF v_row.id IS NOT NULL THEN
    v_outcome := 'created';
  ELSE
    -- a concurrent registration of the same name committed first (the insert waited for it): read it, locked
    SELECT t.* INTO v_row FROM job_types t
    WHERE t.room = p_room AND t.name = p_name AND t.scope_owner = p_scope_owner
    FOR UPDATE;
    IF v_row.deleted_at IS NOT NULL THEN
      UPDATE job_types t SET schema = p_schema, schema_digest = p_schema_digest, max_attempts = p_max_attempts, registered_by = p_registered_by,
        deleted_at = NULL, updated_at = v_now
      WHERE t.id = v_row.id
      RETURNING t.* INTO v_row;
      v_outcome := 'revived';
    ELSIF v_row.schema = p_schema THEN
      v_outcome := 'existing';
    ELSE
      RETURN QUERY SELECT v_row.id, 'conflict'::text, v_row.schema, v_row.schema_digest, v_row.max_attempts, v_row.registered_by,
        v_row.created_at, v_row.updated_at;
      RETURN;
    END IF;
  END IF;
  IF p_worker IS NOT NULL THEN
    INSERT INTO workers AS w (id, queues, names, heartbeat_interval_ms, lease_ms, registered_at, last_seen_at)
    VALUES (p_worker, '{}', NULL, p_heartbeat_ms, p_lease_ms, v_now, v_now)
    ON CONFLICT (id) DO UPDATE SET last_seen_at = greatest(w.last_seen_at, EXCLUDED.last_seen_at);
    INSERT INTO job_type_workers (job_type_id, worker_id, linked_at) VALUES (v_row.id, p_worker, v_now)
    ON CONFLICT DO NOTHING;
    -- a claim of this worker waiting now learns of the type it serves from now on (at commit)
    IF FOUND THEN
      PERFORM pg_notify(current_schema() || '.ready', '@worker:' || p_worker);
    END IF;
  END IF;
  RETURN QUERY SELECT v_row.id, v_outcome, v_row.schema, v_row.schema_digest, v_row.max_attempts, v_row.registered_by, v_row.created_at,
    v_row.updated_at;
END
$$;
