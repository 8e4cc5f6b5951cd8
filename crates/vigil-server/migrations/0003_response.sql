-- Vigil server schema, version 3: remote response. An analyst's action for one agent
-- waits here until the agent collects it (`POST /agent/v1/actions`, a long poll), and
-- the agent's outcome comes back on its next collection. The agent's isolation state,
-- as its last heartbeat or action outcome said.

CREATE TABLE response_actions (
    id            BIGSERIAL PRIMARY KEY,
    org_id        BIGINT NOT NULL REFERENCES organisations(id),
    agent_id      TEXT NOT NULL REFERENCES agents(id),
    kind          TEXT NOT NULL CHECK (kind IN ('kill', 'quarantine', 'isolate', 'lift')),
    target        TEXT NOT NULL DEFAULT '',
    finding_uid   TEXT,
    requested_by  TEXT NOT NULL,
    requested_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    state         TEXT NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'sent', 'done', 'failed')),
    sent_at       TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    result        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX response_actions_agent ON response_actions (agent_id, state);
CREATE INDEX response_actions_org ON response_actions (org_id, requested_at DESC);

ALTER TABLE agents ADD COLUMN isolated BOOLEAN NOT NULL DEFAULT false;
