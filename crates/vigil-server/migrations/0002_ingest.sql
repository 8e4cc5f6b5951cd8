-- Vigil server schema, version 2: what agents ship. Events go to each organisation's
-- lake (Parquet, the agent store's format, under the data directory); this records how
-- far each agent's streams are stored, and keeps findings and incidents for triage.

-- One row per agent and stream (`findings`, `events`). `acked`: every record up to this
-- sequence is stored. `pending_*`: a batch being written to the lake (its first
-- sequence, how many, the lake sequence its first record takes), resolved against the
-- lake at the next write or start, so that a crash between the lake and this table
-- neither loses nor doubles a record.
CREATE TABLE ship_streams (
    agent_id          TEXT NOT NULL REFERENCES agents(id),
    stream            TEXT NOT NULL CHECK (stream IN ('findings', 'events')),
    org_id            BIGINT NOT NULL REFERENCES organisations(id),
    acked             BIGINT NOT NULL DEFAULT 0,
    records           BIGINT NOT NULL DEFAULT 0,
    duplicates        BIGINT NOT NULL DEFAULT 0,
    gaps              BIGINT NOT NULL DEFAULT 0,
    pending_first     BIGINT,
    pending_count     BIGINT,
    pending_lake_seq  BIGINT,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, stream)
);
CREATE INDEX ship_streams_org ON ship_streams (org_id);

-- Detection and Incident Findings, once each (by their `metadata.uid` within the
-- organisation), with the fields the incident queue sorts and filters on; the whole
-- event as the agent wrote it.
CREATE TABLE findings (
    org_id       BIGINT NOT NULL REFERENCES organisations(id),
    uid          TEXT NOT NULL,
    agent_id     TEXT NOT NULL REFERENCES agents(id),
    class_uid    INTEGER NOT NULL,
    time         TIMESTAMPTZ NOT NULL,
    severity_id  INTEGER NOT NULL,
    title        TEXT NOT NULL,
    story        TEXT,
    status       TEXT NOT NULL DEFAULT 'new'
                 CHECK (status IN ('new', 'in_progress', 'resolved', 'false_positive')),
    event        TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, uid)
);
CREATE INDEX findings_org_time ON findings (org_id, time DESC);
CREATE INDEX findings_org_story ON findings (org_id, story);
