-- Vigil server schema, version 4: triage beyond a status. Who a finding is assigned to
-- (a user of its organisation), and analysts' notes on an incident (a story).

ALTER TABLE findings ADD COLUMN assignee TEXT;

CREATE TABLE story_notes (
    id      BIGSERIAL PRIMARY KEY,
    org_id  BIGINT NOT NULL REFERENCES organisations(id),
    story   TEXT NOT NULL,
    author  TEXT NOT NULL,
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    text    TEXT NOT NULL
);
CREATE INDEX story_notes_story ON story_notes (org_id, story, id);
