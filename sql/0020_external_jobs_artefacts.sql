-- Jobs run elsewhere and artefacts (issue 20).
-- `external`: a job enqueued with `tracking: "external"` is run by a system outside jobwatch (Celery tasks, a
-- cron host) that reports on it by id: no jobwatch worker ever claims it, so the claim index leaves it out.
-- `artefacts`: what its workers attached (name, url, contentType, size, checksum), in attachment order.
-- Both columns have constant defaults: adding them rewrites no row.
ALTER TABLE jobs ADD COLUMN external boolean NOT NULL DEFAULT false;
ALTER TABLE jobs ADD COLUMN artefacts jsonb NOT NULL DEFAULT '[]';

DROP INDEX jobs_claim_order;
CREATE INDEX jobs_claim_order ON jobs (queue, priority DESC, id) WHERE status = 'pending' AND NOT external;
