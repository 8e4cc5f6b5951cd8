-- Vigil server schema, version 1: organisations, host groups, users, sessions, API
-- tokens, enrolment tokens, agents and the audit log. Every secret a client presents
-- (session, API token, enrolment token) is stored as its SHA-256, never in clear.

CREATE TABLE organisations (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE host_groups (
    id          BIGSERIAL PRIMARY KEY,
    org_id      BIGINT NOT NULL REFERENCES organisations(id),
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);

CREATE TABLE users (
    id                    BIGSERIAL PRIMARY KEY,
    org_id                BIGINT NOT NULL REFERENCES organisations(id),
    name                  TEXT NOT NULL UNIQUE,
    password_hash         TEXT NOT NULL,
    must_change_password  BOOLEAN NOT NULL DEFAULT true,
    totp_secret           BYTEA NOT NULL,
    totp_last_step        BIGINT NOT NULL DEFAULT 0,
    role                  TEXT NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer')),
    disabled              BOOLEAN NOT NULL DEFAULT false,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX users_org ON users (org_id);

CREATE TABLE sessions (
    id          BIGSERIAL PRIMARY KEY,
    org_id      BIGINT NOT NULL REFERENCES organisations(id),
    user_id     BIGINT NOT NULL REFERENCES users(id),
    token_hash  BYTEA NOT NULL UNIQUE,
    csrf_token  TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    revoked     BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id          BIGSERIAL PRIMARY KEY,
    org_id      BIGINT NOT NULL REFERENCES organisations(id),
    user_id     BIGINT NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ,
    revoked     BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE enrolment_tokens (
    id          BIGSERIAL PRIMARY KEY,
    org_id      BIGINT NOT NULL REFERENCES organisations(id),
    group_id    BIGINT NOT NULL REFERENCES host_groups(id),
    token_hash  BYTEA NOT NULL UNIQUE,
    expires_at  TIMESTAMPTZ NOT NULL,
    uses_left   INTEGER NOT NULL CHECK (uses_left >= 0),
    revoked     BOOLEAN NOT NULL DEFAULT false,
    created_by  BIGINT NOT NULL REFERENCES users(id),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX enrolment_tokens_org ON enrolment_tokens (org_id);

CREATE TABLE agents (
    id           TEXT PRIMARY KEY,
    org_id       BIGINT NOT NULL REFERENCES organisations(id),
    group_id     BIGINT NOT NULL REFERENCES host_groups(id),
    cert_serial  TEXT NOT NULL UNIQUE,
    cert_sha256  BYTEA NOT NULL UNIQUE,
    hostname     TEXT NOT NULL,
    version      TEXT NOT NULL DEFAULT '',
    stats        TEXT NOT NULL DEFAULT '{}',
    enrolled_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen    TIMESTAMPTZ,
    revoked      BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX agents_org ON agents (org_id);

CREATE TABLE audit_log (
    id      BIGSERIAL PRIMARY KEY,
    org_id  BIGINT REFERENCES organisations(id),
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    source  TEXT NOT NULL,
    result  TEXT NOT NULL
);
CREATE INDEX audit_log_org_at ON audit_log (org_id, at);
