-- Vigil server schema, version 5: staged content rollout. An admin uploads a content
-- bundle (the agent's bundle format: a manifest with the SHA-256 of every file, and
-- the files); a rollout offers it to a canary host group first, watches the canaries'
-- heartbeats against what they reported before, and either halts (the canaries are
-- told to go back) or offers it to every other agent of the organisation.

CREATE TABLE content_bundles (
    id           BIGSERIAL PRIMARY KEY,
    org_id       BIGINT NOT NULL REFERENCES organisations(id),
    version      TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    -- The bundle as uploaded: {"files": {"PATH": "TEXT", ...}}, the manifest among them.
    files        TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    uploaded_by  TEXT NOT NULL,
    uploaded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (org_id, version)
);

CREATE TABLE rollouts (
    id             BIGSERIAL PRIMARY KEY,
    org_id         BIGINT NOT NULL REFERENCES organisations(id),
    bundle_id      BIGINT NOT NULL REFERENCES content_bundles(id),
    canary_group   BIGINT NOT NULL REFERENCES host_groups(id),
    -- How long every canary must run the bundle, healthy, before the rest get it.
    canary_secs    INTEGER NOT NULL,
    state          TEXT NOT NULL DEFAULT 'canary'
                   CHECK (state IN ('canary', 'rollout', 'complete', 'halted')),
    reason         TEXT NOT NULL DEFAULT '',
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- When the last canary ran it; the canary stage ends canary_secs later.
    canaries_at    TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ
);
-- One rollout under way per organisation.
CREATE UNIQUE INDEX rollouts_active ON rollouts (org_id) WHERE state IN ('canary', 'rollout');

CREATE TABLE rollout_agents (
    rollout_id   BIGINT NOT NULL REFERENCES rollouts(id),
    agent_id     TEXT NOT NULL REFERENCES agents(id),
    canary       BOOLEAN NOT NULL,
    state        TEXT NOT NULL DEFAULT 'waiting'
                 CHECK (state IN ('waiting', 'offered', 'running', 'refused', 'back')),
    detail       TEXT NOT NULL DEFAULT '',
    -- The agent's heartbeat statistics when the rollout began, and the version it ran.
    baseline     TEXT NOT NULL DEFAULT '{}',
    before       TEXT NOT NULL DEFAULT '',
    -- Its statistics when it first reported running the bundle.
    at_run       TEXT,
    running_at   TIMESTAMPTZ,
    PRIMARY KEY (rollout_id, agent_id)
);
