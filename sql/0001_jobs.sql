-- Jobs: one row per job, changed only by compare-and-set updates that bump `version`
-- (each such change writes the job_events row with the same version in the same statement).

CREATE TABLE jobs (
  id uuid PRIMARY KEY,
  queue text NOT NULL,
  name text NOT NULL,
  owner text,
  payload jsonb NOT NULL DEFAULT 'null',
  priority integer NOT NULL DEFAULT 0,
  status text NOT NULL CHECK (status IN ('scheduled', 'pending', 'claimed', 'running', 'completed', 'failed', 'canceled', 'deleted')),
  attempt integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 1 CHECK (max_attempts >= 1),
  timeout_ms bigint CHECK (timeout_ms > 0),
  idempotency_key text,
  progress_percent double precision NOT NULL DEFAULT 0 CHECK (progress_percent BETWEEN 0 AND 100),
  progress_step text,
  progress_message text,
  progress_data jsonb,
  progress_updated_at timestamptz,
  result jsonb,
  error_code text,
  error_message text,
  worker_id text,
  lease_expires_at timestamptz,
  cancel_requested boolean NOT NULL DEFAULT false,
  version integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  scheduled_at timestamptz NOT NULL DEFAULT now(),
  claimed_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz
);

-- same owner + key = same job; NULLS NOT DISTINCT so that jobs without an owner dedupe too
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (owner, idempotency_key) NULLS NOT DISTINCT
  WHERE idempotency_key IS NOT NULL;

-- the claim order: priority, then FIFO by UUIDv7 id
CREATE INDEX jobs_claim_order ON jobs (queue, priority DESC, id) WHERE status = 'pending';
CREATE INDEX jobs_due ON jobs (scheduled_at) WHERE status = 'scheduled';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status IN ('claimed', 'running');
CREATE INDEX jobs_by_owner ON jobs (owner, id DESC);
CREATE INDEX jobs_by_status ON jobs (status, id DESC);
