-- The outbox and history of every job: versions of a job are contiguous from 1.

-- A UUIDv7 (RFC 9562) from the clock and gen_random_uuid(): PostgreSQL 18 has uuidv7(), 15 does not.
CREATE FUNCTION uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    set_bit(
      set_bit(
        overlay(uuid_send(gen_random_uuid())
          PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
          FROM 1 FOR 6),
        52, 1),
      53, 1),
    'hex')::uuid
$$;

CREATE TABLE job_events (
  job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  version integer NOT NULL,
  id uuid NOT NULL DEFAULT uuid_v7(),
  type text NOT NULL,
  status text NOT NULL,
  previous_status text,
  progress double precision NOT NULL DEFAULT 0,
  previous_progress double precision,
  step text,
  message text,
  attempt integer NOT NULL DEFAULT 0,
  milestone boolean NOT NULL DEFAULT false,
  data jsonb,
  error_code text,
  error_message text,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (job_id, version)
);

-- The doorbell: one pg_notify per statement on channel "<schema>.doorbell" carrying "job_id:version" pairs
-- (the highest version per job), comma-separated. NOTIFY payloads are limited to 8000 bytes: a statement that
-- changes more jobs sends several chunks, and one that changes very many sends '*' ("reconcile everything").
-- Delivered at commit; a latency hint only, never the truth.
CREATE FUNCTION job_events_doorbell() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  channel text := TG_TABLE_SCHEMA || '.doorbell';
  chunk text := '';
  pair text;
BEGIN
  IF (SELECT count(DISTINCT job_id) FROM new_rows) > 3000 THEN
    PERFORM pg_notify(channel, '*');
    RETURN NULL;
  END IF;
  FOR pair IN SELECT job_id::text || ':' || max(version) FROM new_rows GROUP BY job_id LOOP
    IF chunk = '' THEN
      chunk := pair;
    ELSIF octet_length(chunk) + 1 + octet_length(pair) > 7900 THEN
      PERFORM pg_notify(channel, chunk);
      chunk := pair;
    ELSE
      chunk := chunk || ',' || pair;
    END IF;
  END LOOP;
  IF chunk <> '' THEN
    PERFORM pg_notify(channel, chunk);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER job_events_doorbell AFTER INSERT ON job_events
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION job_events_doorbell();
