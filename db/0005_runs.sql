-- 0005: runs asked for through the API or a trigger message.
--
-- A run is a pass the loader was asked for (`POST /api/runs`, a message on TRIGGER_SUBJECT):
-- its steps are the files pending in its tables when it was asked for, each PENDING,
-- IN_PROGRESS, SUCCESSFUL or FAILED. The row holds the run exactly as the API shows it
-- (`document`), so every instance answers for every run, and a run survives a restart (an
-- instance that starts finds the runs left IN_PROGRESS and finishes them).

CREATE TABLE loader_runs (
    id           uuid         PRIMARY KEY,
    name         text,
    mode         text         NOT NULL CHECK (mode IN ('once', 'dry_run')),
    status       text         NOT NULL CHECK (status IN ('IN_PROGRESS', 'SUCCESSFUL', 'FAILED')),
    created_at   timestamptz  NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz  NOT NULL DEFAULT clock_timestamp(),
    document     jsonb        NOT NULL
);
CREATE INDEX loader_runs_created_at_idx ON loader_runs (created_at);
CREATE INDEX loader_runs_in_progress_idx ON loader_runs (created_at) WHERE status = 'IN_PROGRESS';
