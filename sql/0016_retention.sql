-- Retention (sql/functions/job_purge.sql): finished jobs are found oldest first by when they finished, and a job's
-- webhook deliveries by its id (they are removed with it).
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE status IN ('completed', 'failed', 'canceled', 'deleted');
CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (job_id);
