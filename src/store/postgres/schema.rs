//! The PostgreSQL schema as numbered migrations compiled into the binary, applied
//! in order at open under an advisory lock (so two proxies starting together do
//! not both migrate), and the refusal of a database newer than this binary.
//!
//! Rows are kept as JSON documents (`doc`) beside the columns that indexes and
//! constraints need: the documents round-trip exactly through serde (export →
//! import → export), and every rule that must hold across processes is a unique
//! index or a check inside a SERIALIZABLE transaction, never a cache.

use postgres::GenericClient;

use super::PgError;

/// Each entry is the SQL that takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // v1: everything the `CrmStore` trait needs.
    r#"
CREATE TABLE crm_meta (key text PRIMARY KEY, value jsonb NOT NULL);

-- Records: one row each; `order_key` is the folded-name sort key of the paging
-- cursors (bytes compare like sled's keys, so cursors mean the same thing).
CREATE TABLE records (
    id uuid PRIMARY KEY,
    kind smallint NOT NULL,
    order_key bytea NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX records_kind_id ON records (kind, id);
CREATE INDEX records_kind_order ON records (kind, order_key);

CREATE TABLE activities (
    id uuid PRIMARY KEY,
    kind smallint NOT NULL,
    message_id text COLLATE "C",
    -- Emails only: '' for one kept without its original. One email per
    -- (Message-ID, digest), across every process.
    digest text COLLATE "C",
    created_ms bigint NOT NULL,
    thread text COLLATE "C",
    token text COLLATE "C",
    appt_uid text COLLATE "C",
    facts jsonb NOT NULL,
    doc jsonb NOT NULL
);
CREATE UNIQUE INDEX activities_message ON activities (message_id, digest) WHERE digest IS NOT NULL;
CREATE INDEX activities_message_id ON activities (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX activities_thread ON activities (thread, id) WHERE thread IS NOT NULL;
CREATE INDEX activities_token ON activities (token, id) WHERE token IS NOT NULL;
CREATE INDEX activities_appt_uid ON activities (appt_uid, id) WHERE appt_uid IS NOT NULL;

-- Who points to whom: a row or tracking record (`source`) that needs `target` to
-- exist. Deletes are refused while any row names the target.
CREATE TABLE refs (
    target uuid NOT NULL,
    source_kind smallint NOT NULL,
    source uuid NOT NULL,
    owner_msg text COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX refs_target ON refs (target, source_kind, source);
CREATE INDEX refs_source ON refs (source, owner_msg);

-- Address → records, on the normalised key (lower-case, IDN as punycode).
CREATE TABLE emails (addr_key text COLLATE "C" NOT NULL, id uuid NOT NULL, kind smallint NOT NULL,
    PRIMARY KEY (addr_key, id));
CREATE INDEX emails_id ON emails (id);
CREATE TABLE logins (addr_key text COLLATE "C" PRIMARY KEY, user_id uuid NOT NULL);
CREATE INDEX logins_user ON logins (user_id);
CREATE TABLE uniques (key text COLLATE "C" PRIMARY KEY, id uuid NOT NULL);
CREATE INDEX uniques_id ON uniques (id);

-- Full-text postings: tokens folded like sled's (accents, case), prefix-searched.
CREATE TABLE postings (token text COLLATE "C" NOT NULL, id uuid NOT NULL, kind smallint NOT NULL,
    weight smallint NOT NULL, PRIMARY KEY (token, id));
CREATE INDEX postings_id ON postings (id);

CREATE TABLE timeline (record uuid NOT NULL, at_ms bigint NOT NULL, activity uuid NOT NULL,
    PRIMARY KEY (record, at_ms, activity));
CREATE INDEX timeline_activity ON timeline (activity);

CREATE TABLE tracking (
    owner uuid NOT NULL,
    message_id text COLLATE "C" NOT NULL,
    pending boolean NOT NULL,
    requested_ms bigint NOT NULL,
    loc_folder text COLLATE "C",
    loc_validity bigint,
    loc_uid bigint,
    written bigint NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (owner, message_id)
);
CREATE INDEX tracking_message ON tracking (message_id, owner);
CREATE INDEX tracking_pending ON tracking (requested_ms, owner, message_id) WHERE pending;
CREATE INDEX tracking_location ON tracking (owner, loc_folder, loc_validity, loc_uid) WHERE loc_folder IS NOT NULL;
CREATE SEQUENCE tracking_written;

CREATE TABLE book (
    owner uuid NOT NULL,
    id uuid NOT NULL,
    view smallint NOT NULL,
    order_key bytea NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX book_order ON book (owner, order_key);
CREATE INDEX book_view_order ON book (owner, view, order_key);
CREATE TABLE book_emails (owner uuid NOT NULL, addr_key text COLLATE "C" NOT NULL, entry uuid NOT NULL,
    PRIMARY KEY (owner, addr_key));
CREATE INDEX book_emails_entry ON book_emails (owner, entry);

CREATE TABLE user_lists (user_id uuid NOT NULL, list "char" NOT NULL, doc jsonb NOT NULL,
    PRIMARY KEY (user_id, list));

-- Raw messages, invitations and files: shared by the team like the rows.
CREATE TABLE blobs (sha256 text COLLATE "C" PRIMARY KEY, size bigint NOT NULL, data bytea NOT NULL);
"#,
    // v2: every process hears what another changed (`notify`): a record, a
    // record's timeline (an activity filed on it), a mailbox's tracking record.
    // Sent at commit, to every session that LISTENs on `crm_changes`.
    r#"
CREATE FUNCTION crm_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'records' THEN
        PERFORM pg_notify('crm_changes', json_build_object('record', r.id)::text);
    ELSIF TG_TABLE_NAME = 'timeline' THEN
        PERFORM pg_notify('crm_changes', json_build_object('record', r.record)::text);
    ELSIF TG_TABLE_NAME = 'tracking' THEN
        PERFORM pg_notify('crm_changes',
            json_build_object('owner', r.owner, 'message_id', r.message_id)::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER records_notify AFTER INSERT OR UPDATE OR DELETE ON records
    FOR EACH ROW EXECUTE FUNCTION crm_notify();
CREATE TRIGGER timeline_notify AFTER INSERT OR DELETE ON timeline
    FOR EACH ROW EXECUTE FUNCTION crm_notify();
CREATE TRIGGER tracking_notify AFTER INSERT OR UPDATE OR DELETE ON tracking
    FOR EACH ROW EXECUTE FUNCTION crm_notify();
"#,
    // v3: a search reads postings by token range; with the kind and weight in
    // the index it need not visit the table for each (index-only scans).
    r#"
CREATE INDEX postings_cover ON postings (token) INCLUDE (id, kind, weight);
"#,
    // v4: the gateway's per-folder checkpoints (issue 13).
    r#"
CREATE TABLE IF NOT EXISTS gateway_checkpoints (
    owner uuid NOT NULL,
    mailbox text COLLATE "C" NOT NULL,
    folder text COLLATE "C" NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (owner, mailbox, folder)
);
"#,
    // v5 (issue 12, search p99; the fourth entry until the gateway's v4 lands
    // before it, idempotent so either order is safe): a search checks the
    // candidates of its rarest word against the other words with one index-only
    // probe each, by id and token range; this index also serves the deletes by
    // id that `postings_id` did. A database that ran this as its v4 gets the
    // gateway's table here.
    r#"
CREATE INDEX IF NOT EXISTS postings_id_token ON postings (id, token) INCLUDE (weight);
DROP INDEX IF EXISTS postings_id;
CREATE TABLE IF NOT EXISTS gateway_checkpoints (
    owner uuid NOT NULL,
    mailbox text COLLATE "C" NOT NULL,
    folder text COLLATE "C" NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (owner, mailbox, folder)
);
"#,
    // v6 (issue 12, search p99): postings by first letter, best score first,
    // then id, so a query of one-letter words ("O'B": "o" and "b", each ≈ 27,000
    // postings at 100,000 contacts) reads each word's best few and stops
    // (`search::top`) instead of reading and grouping every posting. The score
    // is the search's for a one-letter word: 4 × weight + 2 for the one-letter
    // token itself, 2 × weight for a longer one; the search spells both
    // expressions exactly so (the planner matches them as text). Built from the
    // postings already stored, kept by PostgreSQL as postings are written.
    r#"
CREATE INDEX IF NOT EXISTS postings_initial ON postings (left(token, 1),
    (CASE WHEN length(token) = 1 THEN weight * 4 + 2 ELSE weight * 2 END) DESC, id);
"#,
];

/// The schema version this binary writes.
pub const CURRENT_VERSION: u32 = MIGRATIONS.len() as u32;

/// Any number; taken by every opener while it checks and migrates the schema.
const MIGRATION_LOCK: i64 = 0x6372_6d70_7278_7931;

/// The version the database holds (`None`: no crmproxy schema yet).
pub fn stored_version(c: &mut impl GenericClient) -> Result<Option<u32>, PgError> {
    let exists: bool = c
        .query_one("SELECT to_regclass('crm_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let v: Option<i32> = c
        .query_opt("SELECT version FROM crm_schema", &[])?
        .map(|r| r.get(0));
    Ok(v.map(|v| v as u32))
}

/// Bring the schema up to date, or refuse a newer one. Each migration runs in its
/// own transaction together with the version bump, so a crash leaves a version.
pub fn migrate(c: &mut postgres::Client) -> Result<(), PgError> {
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let out = migrate_locked(c);
    let unlock = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    out?;
    unlock?;
    Ok(())
}

fn migrate_locked(c: &mut postgres::Client) -> Result<(), PgError> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS crm_schema (version integer NOT NULL, one boolean PRIMARY KEY DEFAULT true CHECK (one))",
    )?;
    let found = stored_version(c)?.unwrap_or(0);
    if found > CURRENT_VERSION {
        return Err(PgError::NewerSchema {
            found,
            supported: CURRENT_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let next = i as i32 + 1;
        tracing::info!(version = next, "migrating the PostgreSQL CRM schema");
        let mut tx = c.transaction()?;
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO crm_schema (version) VALUES ($1) ON CONFLICT (one) DO UPDATE SET version = $1",
            &[&next],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// What `crmproxy doctor` reports of a database, read without changing it.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// `SHOW server_version`.
    pub server_version: String,
    /// `server_version_num` (e.g. 150014).
    pub server_version_num: i32,
    /// Whether this connection is encrypted (TLS, its certificate verified).
    pub tls: bool,
    /// The crmproxy schema version, if the database has one.
    pub schema: Option<u32>,
    /// May this role create the tables (needed when the schema is missing or old)?
    pub can_create: bool,
    pub user: String,
    pub database: String,
}

/// Connect once and look; nothing is written.
pub fn inspect(opts: &super::PgOptions) -> Result<Inspection, PgError> {
    let pool = super::conn::Pool::new(opts)?;
    let mut c = pool.connect()?;
    let row = c.query_one(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int,
                coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false),
                has_database_privilege(current_database(), 'CREATE')
                  AND has_schema_privilege('public', 'CREATE'),
                current_user::text, current_database()::text",
        &[],
    )?;
    Ok(Inspection {
        server_version: row.get(0),
        server_version_num: row.get(1),
        tls: row.get(2),
        can_create: row.get(3),
        user: row.get(4),
        database: row.get(5),
        schema: stored_version(&mut c)?,
    })
}
