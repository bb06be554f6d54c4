-- Job types and rooms (issue 21): the job library's registry. A job type is registered for a room or for every
-- room (`@global`) under a name `<public|private>:<category>:<name>`, with the JSON Schema of its tasks' payloads.
-- A `public` type is one per (room, name) and any user of the room may push its tasks and serve it; a `private` one
-- is its registering user's own, so two users may each have theirs under the same name (`scope_owner`).
-- Removal is soft (`deleted_at`): a task keeps its type, and registering the name again revives the row.
CREATE TABLE job_types (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  room text NOT NULL,
  name text NOT NULL,
  visibility text NOT NULL CHECK (visibility IN ('public', 'private')),
  category text NOT NULL,
  short_name text NOT NULL,
  -- the owner of a private type; '' for a public one (part of the unique key, so never null)
  scope_owner text NOT NULL,
  schema jsonb NOT NULL,
  -- 'sha256:' and the hex SHA-256 of the schema's canonical JSON (RFC 8785): its validator's cache key
  schema_digest text NOT NULL,
  -- the attempts each task gets (that system's rule: one, so a dead worker's task ends failed)
  max_attempts integer NOT NULL DEFAULT 1 CHECK (max_attempts BETWEEN 1 AND 1000),
  registered_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz,
  CHECK ((visibility = 'public') = (scope_owner = ''))
);
CREATE UNIQUE INDEX job_types_key ON job_types (room, name, scope_owner);
-- a user's live types (the registration's per-user bound)
CREATE INDEX job_types_by_registrant ON job_types (registered_by) WHERE deleted_at IS NULL;

-- Which workers serve which types: a worker serves the types it registered. A worker forgotten for silence (the
-- reaper's DELETE FROM workers) drops its links with it.
CREATE TABLE job_type_workers (
  job_type_id bigint NOT NULL REFERENCES job_types (id),
  worker_id text NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
  linked_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_type_id, worker_id)
);
CREATE INDEX job_type_workers_by_worker ON job_type_workers (worker_id);

-- A task is a job with its type; its queue is the room it was pushed to, its name the type's name.
ALTER TABLE jobs ADD COLUMN job_type_id bigint REFERENCES job_types (id);

-- The core claim never takes a task (only the workers serving its type do): its index leaves them out, and tasks
-- have their own, in claim order per type.
DROP INDEX jobs_claim_order;
CREATE INDEX jobs_claim_order ON jobs (queue, priority DESC, id)
  WHERE status = 'pending' AND NOT external AND job_type_id IS NULL;
CREATE INDEX jobs_task_claim_order ON jobs (job_type_id, priority DESC, id)
  WHERE status = 'pending' AND job_type_id IS NOT NULL;
-- the orphan check (a type with no pending or scheduled task) and the foreign key's
CREATE INDEX jobs_by_job_type ON jobs (job_type_id, status) WHERE job_type_id IS NOT NULL;
