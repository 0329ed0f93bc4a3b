//! The audit log copied into PostgreSQL (`mcpgate audit export --to-postgres`), indexed
//! for queries: one row per record, keyed by its chain (the replica that wrote it) and its
//! `seq`, so an export run again adds only the records not there yet. The columns the usual
//! questions filter on (time, principal, person, server and tool, verdict, rule, commit) are
//! copied out of the record; the record itself is kept whole (`jsonb`) with its hash.
//!
//! The log on disk stays the evidence (`mcpgate audit verify` checks it); the table is
//! for queries. A record already in the table with another hash is reported, never
//! overwritten.

use crate::state::db::Migration;
use crate::state::postgres::{Pg, PgError};
use serde_json::Value;

/// The schema of the audit table.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "audit.v1",
    sql: "CREATE TABLE mcpgate_audit (
            chain TEXT NOT NULL,
            seq BIGINT NOT NULL,
            time TIMESTAMPTZ NOT NULL,
            type TEXT NOT NULL,
            replica TEXT,
            principal TEXT,
            on_behalf_of TEXT,
            server TEXT,
            tool TEXT,
            verdict TEXT,
            rule TEXT,
            policy_commit TEXT,
            hash TEXT NOT NULL,
            record JSONB NOT NULL,
            PRIMARY KEY (chain, seq)
          );
          CREATE INDEX mcpgate_audit_time ON mcpgate_audit (time);
          CREATE INDEX mcpgate_audit_principal ON mcpgate_audit (principal, time);
          CREATE INDEX mcpgate_audit_on_behalf_of ON mcpgate_audit (on_behalf_of, time)
            WHERE on_behalf_of IS NOT NULL;
          CREATE INDEX mcpgate_audit_tool ON mcpgate_audit (server, tool, time);
          CREATE INDEX mcpgate_audit_verdict ON mcpgate_audit (verdict, time);
          CREATE INDEX mcpgate_audit_rule ON mcpgate_audit (rule, time) WHERE rule IS NOT NULL;",
}];

/// Records per statement: one round trip each, well within the pool's deadline.
pub const BATCH: usize = 500;

/// What one export did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Exported {
    /// Records added to the table.
    pub added: u64,
    /// Records that were there already, with the same hash.
    pub present: u64,
    /// Records there already with another hash: `chain seq` of the first few.
    pub differing: Vec<String>,
}

/// One record, as the table holds it.
struct Row {
    chain: String,
    seq: i64,
    time: String,
    kind: String,
    replica: Option<String>,
    principal: Option<String>,
    on_behalf_of: Option<String>,
    server: Option<String>,
    tool: Option<String>,
    verdict: Option<String>,
    rule: Option<String>,
    commit: Option<String>,
    hash: String,
    record: String,
}

/// The row of `line` (one record of the log); `chain` names the chain of records that
/// carry no `replica`.
///
/// # Errors
/// When the line is not a record of the log (no `seq`, `time` or `type`).
fn row(line: &str, chain: &str) -> Result<Row, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not a JSON record ({e})"))?;
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let seq = v
        .get("seq")
        .and_then(Value::as_u64)
        .and_then(|n| i64::try_from(n).ok())
        .ok_or("a record without `seq`")?;
    let time = s("/time").ok_or_else(|| format!("seq {seq}: no `time`"))?;
    time.parse::<jiff::Timestamp>()
        .map_err(|e| format!("seq {seq}: `time` {time:?}: {e}"))?;
    let replica = s("/replica");
    Ok(Row {
        chain: replica.clone().unwrap_or_else(|| chain.to_owned()),
        seq,
        time,
        kind: s("/type").ok_or_else(|| format!("seq {seq}: no `type`"))?,
        replica,
        principal: s("/principal/id"),
        on_behalf_of: s("/on_behalf_of"),
        server: s("/server"),
        tool: s("/target/name"),
        verdict: s("/verdict"),
        rule: s("/rule"),
        commit: s("/policy/commit"),
        hash: super::record::hash_hex(line.as_bytes()),
        record: line.to_owned(),
    })
}

/// Adds `lines` (records of one log, in order) to the table, [`BATCH`] at a time, each
/// batch in one statement; records already there are left as they are.
///
/// # Errors
/// When a line is not a record, or the database fails (the batches before it are kept).
pub fn export(pg: &Pg, lines: &[String], chain: &str) -> Result<Exported, String> {
    let mut done = Exported::default();
    for batch in lines.chunks(BATCH) {
        let rows = batch
            .iter()
            .map(|l| row(l, chain))
            .collect::<Result<Vec<_>, _>>()?;
        let (added, present, differing) = insert(pg, &rows).map_err(|e| e.to_string())?;
        done.added += added;
        done.present += present;
        for d in differing {
            if done.differing.len() < 10 {
                done.differing.push(d);
            }
        }
    }
    Ok(done)
}

/// One batch: (added, present with the same hash, `chain seq` present with another hash).
fn insert(pg: &Pg, rows: &[Row]) -> Result<(u64, u64, Vec<String>), PgError> {
    fn col<T: Clone>(rows: &[Row], f: impl Fn(&Row) -> T) -> Vec<T> {
        rows.iter().map(f).collect()
    }
    let chain = col(rows, |r| r.chain.clone());
    let seq = col(rows, |r| r.seq);
    let time = col(rows, |r| r.time.clone());
    let kind = col(rows, |r| r.kind.clone());
    let replica = col(rows, |r| r.replica.clone());
    let principal = col(rows, |r| r.principal.clone());
    let on_behalf_of = col(rows, |r| r.on_behalf_of.clone());
    let server = col(rows, |r| r.server.clone());
    let tool = col(rows, |r| r.tool.clone());
    let verdict = col(rows, |r| r.verdict.clone());
    let rule = col(rows, |r| r.rule.clone());
    let commit = col(rows, |r| r.commit.clone());
    let hash = col(rows, |r| r.hash.clone());
    let record = col(rows, |r| r.record.clone());
    pg.run(async |c| {
        // The rows already there are read from the statement's snapshot, before its insert:
        // those are the records exported before, to compare by hash.
        let r = c
            .query_one(
                "WITH input AS (
                   SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[],
                     $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                     $11::text[], $12::text[], $13::text[], $14::text[])
                   AS t(chain, seq, time, type, replica, principal, on_behalf_of, server,
                        tool, verdict, rule, policy_commit, hash, record)
                 ),
                 added AS (
                   INSERT INTO mcpgate_audit (chain, seq, time, type, replica, principal,
                     on_behalf_of, server, tool, verdict, rule, policy_commit, hash, record)
                   SELECT chain, seq, time::timestamptz, type, replica, principal,
                     on_behalf_of, server, tool, verdict, rule, policy_commit, hash,
                     record::jsonb
                   FROM input
                   ON CONFLICT (chain, seq) DO NOTHING
                   RETURNING 1
                 )
                 SELECT (SELECT count(*) FROM added),
                   (SELECT count(*) FROM input i JOIN mcpgate_audit a USING (chain, seq)
                     WHERE a.hash = i.hash),
                   (SELECT coalesce(array_agg(i.chain || ' ' || i.seq ORDER BY i.seq), '{}')
                     FROM input i JOIN mcpgate_audit a USING (chain, seq)
                     WHERE a.hash <> i.hash)",
                &[
                    &chain,
                    &seq,
                    &time,
                    &kind,
                    &replica,
                    &principal,
                    &on_behalf_of,
                    &server,
                    &tool,
                    &verdict,
                    &rule,
                    &commit,
                    &hash,
                    &record,
                ],
            )
            .await?;
        let added: i64 = r.try_get(0)?;
        let present: i64 = r.try_get(1)?;
        let differing: Vec<String> = r.try_get(2)?;
        Ok((
            u64::try_from(added).unwrap_or_default(),
            u64::try_from(present).unwrap_or_default(),
            differing,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_gives_its_columns() {
        let line = r#"{"on_behalf_of":"ada@example.com","policy":{"commit":"abc","hash":"h"},"prev":"0","principal":{"id":"agent-7"},"replica":"gw-2","rule":"r1","seq":4,"server":"demo","target":{"kind":"tool","name":"echo"},"time":"2026-01-02T03:04:05.000001Z","type":"decision","verdict":"allow"}"#;
        let r = row(line, "default").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.chain, "gw-2");
        assert_eq!(r.seq, 4);
        assert_eq!(r.principal.as_deref(), Some("agent-7"));
        assert_eq!(r.on_behalf_of.as_deref(), Some("ada@example.com"));
        assert_eq!(r.tool.as_deref(), Some("echo"));
        assert_eq!(r.commit.as_deref(), Some("abc"));
        assert_eq!(r.hash, super::super::record::hash_hex(line.as_bytes()));
        let r = row(
            r#"{"seq":0,"time":"2026-01-02T03:04:05Z","type":"event"}"#,
            "gw",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.chain.as_str(), r.replica), ("gw", None));
        for bad in [
            "not json",
            r#"{"time":"2026-01-02T03:04:05Z","type":"event"}"#,
            r#"{"seq":1,"time":"yesterday","type":"event"}"#,
        ] {
            assert!(row(bad, "gw").is_err(), "{bad}");
        }
    }
}
