-- draftdesk's store in PostgreSQL: the records of core.domain, one table each.
-- Ids are the services' own (t{ticket}r{round}{label}); times are timestamptz (UTC in, UTC out).

CREATE TABLE jobs (
    id          bigserial PRIMARY KEY,
    ticket_id   bigint NOT NULL,
    source      text NOT NULL,
    status      text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    not_before  timestamptz NOT NULL,
    last_error  text,
    claimed_by  text,          -- the replica running it
    lease_until timestamptz,   -- renewed while that replica lives; past it, another may take the job
    finished_at timestamptz
);
-- One queued job per ticket (a webhook delivered to two replicas queues it once), and one running.
CREATE UNIQUE INDEX jobs_one_queued_per_ticket ON jobs (ticket_id) WHERE status = 'queued';
CREATE UNIQUE INDEX jobs_one_running_per_ticket ON jobs (ticket_id) WHERE status = 'running';
CREATE INDEX jobs_due ON jobs (not_before, id) WHERE status = 'queued';
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'running';
CREATE INDEX jobs_failed ON jobs (id) WHERE status = 'failed';

CREATE TABLE ticket_threads (
    ticket_id     bigint PRIMARY KEY,
    channel       text NOT NULL,
    ts            text,          -- NULL while the parent message is pending
    pending_since timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rounds (
    id             text PRIMARY KEY,
    ticket_id      bigint NOT NULL,
    comment_id     bigint NOT NULL,
    number         integer NOT NULL,
    status         text NOT NULL,
    notices_posted text[] NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (ticket_id, number)
);
CREATE INDEX rounds_by_comment ON rounds (ticket_id, comment_id);

CREATE TABLE drafts (
    id                 text PRIMARY KEY,
    round_id           text NOT NULL REFERENCES rounds (id),
    ticket_id          bigint NOT NULL,
    round_number       integer NOT NULL,
    label              text NOT NULL,
    model              text NOT NULL,
    text               text,
    error              text,
    channel            text,
    slack_ts           text[] NOT NULL DEFAULT '{}',
    sent_to_zendesk_by text,
    model_version      text,
    prompt             text,
    comment_id         bigint,
    first_posted_at    timestamptz   -- the time of slack_ts[1]: drafts_posted_since
);
CREATE INDEX drafts_by_round ON drafts (round_id);
CREATE INDEX drafts_by_ticket ON drafts (ticket_id);
CREATE INDEX drafts_by_first_post ON drafts (first_posted_at);

CREATE TABLE draft_messages (
    channel  text NOT NULL,
    ts       text NOT NULL,
    draft_id text NOT NULL REFERENCES drafts (id),
    PRIMARY KEY (channel, ts)
);

CREATE TABLE sends (
    id          text PRIMARY KEY,
    ticket_id   bigint NOT NULL,
    round_id    text NOT NULL,
    draft_id    text NOT NULL REFERENCES drafts (id),
    "user"      text NOT NULL,
    state       text NOT NULL,
    public      boolean NOT NULL,
    edited      boolean NOT NULL,
    body_sha256 text NOT NULL,
    started_at  timestamptz NOT NULL,
    author_id   bigint,
    comment_id  bigint,
    finished_at timestamptz,
    error       text,
    edited_text text
);
CREATE INDEX sends_by_round ON sends (round_id);
CREATE INDEX sends_pending ON sends (started_at, id) WHERE state = 'pending';

CREATE TABLE contacts (
    ticket_id bigint PRIMARY KEY,
    name      text NOT NULL,
    email     text NOT NULL
);

-- Votes name their draft but need not have it here (imported votes).
CREATE TABLE votes (
    draft_id      text NOT NULL,
    rater         text NOT NULL,
    ticket_id     bigint NOT NULL,
    model         text NOT NULL,
    score         smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
    source        text NOT NULL,
    voted_at      timestamptz NOT NULL,
    reason        text,
    reason_note   text,
    model_version text,
    PRIMARY KEY (draft_id, rater)
);
CREATE INDEX votes_by_time ON votes (voted_at);

CREATE TABLE outcomes (
    draft_id         text PRIMARY KEY,
    ticket_id        bigint NOT NULL,
    model            text NOT NULL,
    reply_comment_id bigint NOT NULL,
    sent             boolean NOT NULL,
    chrf             double precision NOT NULL,
    edit_distance    double precision NOT NULL,
    replied_at       timestamptz NOT NULL
);
CREATE INDEX outcomes_by_time ON outcomes (replied_at);

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value jsonb
);
