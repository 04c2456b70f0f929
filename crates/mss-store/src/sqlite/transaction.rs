//! One batch of writes in one transaction, with a failing write rolled back alone.
//!
//! The common path is `BEGIN IMMEDIATE`, the writes, `COMMIT`: no statement per write
//! besides its own. Wrapping every write in a `SAVEPOINT` (the earlier design) cost two
//! more statements per write and made SQLite copy every page a write touched into the
//! savepoint's journal first: in a registration benchmark a third of the writer's
//! instructions.
//!
//! A write that fails (a constraint, a full disk) must not take the others with it, and
//! its own partial changes must not be committed. So on the first failure the whole
//! transaction is rolled back and the batch runs again in a fresh one, this time each
//! remaining write inside its own savepoint (the failed write is left out and answered
//! with its error): the retry isolates any further failure without a third attempt.

use rusqlite::Connection;

use super::writer::WriteJob;

/// Runs one transaction-control statement through the statement cache: `execute_batch`
/// would parse and compile it again each time, which costs more than a small write itself.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Rolls back whatever is open after a failure. Best effort: if even this fails the
/// connection is unusable and the next `BEGIN` reports it.
fn roll_back(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// Runs every job of `batch` and commits. `Ok` means committed: each job's own result
/// (kept by the job) says whether its changes are in the commit. `Err` is a failure of the
/// transaction itself (`BEGIN`, `COMMIT`, a savepoint), after which nothing was committed.
pub(crate) fn run(conn: &Connection, batch: &mut [Box<dyn WriteJob>]) -> rusqlite::Result<()> {
    control(conn, "BEGIN IMMEDIATE")?;
    let mut all_ran = true;
    let result = (|| {
        for job in batch.iter_mut() {
            if !job.run(conn) {
                all_ran = false;
                return Ok(());
            }
        }
        control(conn, "COMMIT")
    })();
    if result.is_err() || !all_ran {
        roll_back(conn);
    }
    result?;
    if all_ran {
        return Ok(());
    }
    run_isolated(conn, batch)
}

/// The retry after a failed write: every job that has not failed, each in its own
/// savepoint, in one transaction.
fn run_isolated(conn: &Connection, batch: &mut [Box<dyn WriteJob>]) -> rusqlite::Result<()> {
    if batch.iter().all(|job| job.failed()) {
        return Ok(());
    }
    control(conn, "BEGIN IMMEDIATE")?;
    let result = (|| {
        for job in batch.iter_mut().filter(|job| !job.failed()) {
            control(conn, "SAVEPOINT job")?;
            if !job.run(conn) {
                control(conn, "ROLLBACK TO job")?;
            }
            control(conn, "RELEASE job")?;
        }
        control(conn, "COMMIT")
    })();
    if result.is_err() {
        roll_back(conn);
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::sqlite::writer::{Durability, Outcome};

    /// A job running SQL statements, counting its runs, keeping its last result.
    struct Sql {
        statements: Vec<&'static str>,
        runs: Arc<AtomicUsize>,
        result: Option<bool>,
    }

    impl WriteJob for Sql {
        fn run(&mut self, conn: &Connection) -> bool {
            self.runs.fetch_add(1, Ordering::Relaxed);
            let ok = self
                .statements
                .iter()
                .all(|sql| conn.execute(sql, []).is_ok());
            self.result = Some(ok);
            ok
        }
        fn failed(&self) -> bool {
            self.result == Some(false)
        }
        fn complete(self: Box<Self>, _: Outcome<'_>) {}
        fn durability(&self) -> Durability {
            Durability::Synced
        }
    }

    fn job(statements: &[&'static str]) -> (Box<dyn WriteJob>, Arc<AtomicUsize>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let job = Sql {
            statements: statements.to_vec(),
            runs: Arc::clone(&runs),
            result: None,
        };
        (Box::new(job), runs)
    }

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .unwrap();
        conn
    }

    fn rows(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn.prepare("SELECT x FROM t ORDER BY x").unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn common_path_runs_each_job_once_without_savepoints() {
        let conn = db();
        let (a, ra) = job(&["INSERT INTO t VALUES (1)"]);
        let (b, rb) = job(&["INSERT INTO t VALUES (2)"]);
        let mut batch = vec![a, b];
        run(&conn, &mut batch).unwrap();
        assert_eq!(rows(&conn), [1, 2]);
        assert_eq!(
            (ra.load(Ordering::Relaxed), rb.load(Ordering::Relaxed)),
            (1, 1)
        );
        assert!(batch.iter().all(|j| !j.failed()));
        assert!(conn.is_autocommit());
    }

    #[test]
    fn failing_job_is_left_out_and_the_rest_retried() {
        let conn = db();
        let (a, ra) = job(&["INSERT INTO t VALUES (1)"]);
        // Changes a row, then fails: its first change must not survive.
        let (b, rb) = job(&["INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (1)"]);
        let (c, rc) = job(&["INSERT INTO t VALUES (3)"]);
        // Fails only when run after b's failure was isolated: its savepoint is rolled back.
        let (d, _) = job(&["INSERT INTO t VALUES (4)", "INSERT INTO t VALUES (3)"]);
        let mut batch = vec![a, b, c, d];
        run(&conn, &mut batch).unwrap();
        assert_eq!(rows(&conn), [1, 3]);
        let failed: Vec<bool> = batch.iter().map(|j| j.failed()).collect();
        assert_eq!(failed, [false, true, false, true]);
        assert_eq!(ra.load(Ordering::Relaxed), 2, "run, rolled back, run again");
        assert_eq!(
            rb.load(Ordering::Relaxed),
            1,
            "the failed job is not run again"
        );
        assert_eq!(
            rc.load(Ordering::Relaxed),
            1,
            "never reached before the retry"
        );
        assert!(conn.is_autocommit());
    }

    #[test]
    fn lone_failing_job_commits_nothing() {
        let conn = db();
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let (a, ra) = job(&["INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (1)"]);
        let mut batch = vec![a];
        run(&conn, &mut batch).unwrap();
        assert_eq!(rows(&conn), [1]);
        assert!(batch[0].failed());
        assert_eq!(ra.load(Ordering::Relaxed), 1);
        assert!(conn.is_autocommit());
    }

    #[test]
    fn failed_begin_is_an_error() {
        let conn = db();
        conn.execute_batch("BEGIN").unwrap();
        let (a, ra) = job(&["INSERT INTO t VALUES (1)"]);
        assert!(run(&conn, &mut [a]).is_err());
        assert_eq!(ra.load(Ordering::Relaxed), 0);
    }
}
