//! Group commit: one thread owns the connection that writes. Writes
//! waiting at the same moment share one transaction and so one fsync, and
//! each is answered only after the commit that holds it returned (with
//! `synchronous=FULL`, once it is on disk). Each write runs in a savepoint
//! of its own, so one that fails is rolled back alone and the others of its
//! batch still commit.

use std::sync::mpsc;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::engine::storage::{StorageError, StorageResult};

/// A write: statements run on the batch's connection (inside a savepoint).
pub(super) type Job = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;

struct Request {
    job: Job,
    done: oneshot::Sender<StorageResult<()>>,
}

pub(super) struct Writer {
    tx: mpsc::Sender<Request>,
}

impl Writer {
    /// Starts the writing thread on `conn`; at most `max_batch` writes
    /// share a transaction (1: each write commits alone).
    pub fn start(conn: Connection, max_batch: usize) -> StorageResult<Writer> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, max_batch.max(1)))
            .map_err(|e| StorageError::Failed(e.to_string()))?;
        Ok(Writer { tx })
    }

    /// Runs `job` in the next commit; returns once that commit is durable.
    pub async fn write(&self, job: Job) -> StorageResult<()> {
        let (done, wait) = oneshot::channel();
        let gone = || StorageError::Failed("the database writer stopped".into());
        self.tx.send(Request { job, done }).map_err(|_| gone())?;
        wait.await.map_err(|_| gone())?
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Request>, max_batch: usize) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit(&mut conn, batch);
    }
}

/// Runs a batch in one transaction and answers each write.
fn commit(conn: &mut Connection, batch: Vec<Request>) {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return answer_all(batch, &classify(e)),
    };
    let mut answers = Vec::with_capacity(batch.len());
    for Request { job, done } in batch {
        let result = match tx.savepoint() {
            Ok(mut sp) => match job(&sp) {
                Ok(()) => sp.commit().map_err(classify),
                Err(e) => {
                    let _ = sp.rollback();
                    Err(classify(e))
                }
            },
            Err(e) => Err(classify(e)),
        };
        answers.push((done, result));
    }
    match tx.commit() {
        Ok(()) => {
            for (done, result) in answers {
                let _ = done.send(result);
            }
        }
        // The transaction was rolled back when `commit` failed.
        Err(e) => answer_all_of(answers.into_iter().map(|(done, _)| done), &classify(e)),
    }
}

/// A failed write as the engine sees it: a full disk apart from the rest.
pub(super) fn classify(e: rusqlite::Error) -> StorageError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => StorageError::Full(e.to_string()),
        _ => StorageError::Failed(e.to_string()),
    }
}

fn answer_all(batch: Vec<Request>, e: &StorageError) {
    answer_all_of(batch.into_iter().map(|r| r.done), e);
}

fn answer_all_of(waiting: impl Iterator<Item = oneshot::Sender<StorageResult<()>>>, e: &StorageError) {
    for done in waiting {
        let _ = done.send(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(n: i64) -> Job {
        Box::new(move |c| c.execute("INSERT INTO t (n) VALUES (?1)", [n]).map(|_| ()))
    }

    #[test]
    fn a_failing_write_rolls_back_alone_and_the_rest_of_its_batch_commits() {
        let mut conn = Connection::open_in_memory().expect("db");
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)").expect("schema");
        let failing: Job = Box::new(|c| {
            c.execute("INSERT INTO t (n) VALUES (2)", [])?;
            c.execute("INSERT INTO nowhere VALUES (1)", []).map(|_| ())
        });
        let mut waits = Vec::new();
        let mut batch = Vec::new();
        for job in [insert(1), failing, insert(3)] {
            let (done, wait) = oneshot::channel();
            batch.push(Request { job, done });
            waits.push(wait);
        }
        commit(&mut conn, batch);
        let answers: Vec<bool> = waits.into_iter().map(|w| w.blocking_recv().expect("answered").is_ok()).collect();
        assert_eq!(answers, [true, false, true]);
        let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").expect("select");
        let rows: Vec<i64> = stmt.query_map([], |r| r.get(0)).expect("rows").map(|r| r.expect("row")).collect();
        assert_eq!(rows, [1, 3], "the failed write's first statement was rolled back too");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_each_is_answered() {
        let dir = tempfile::tempdir().expect("dir");
        let conn = Connection::open(dir.path().join("db")).expect("db");
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)").expect("schema");
        let writer = std::sync::Arc::new(Writer::start(conn, 64).expect("writer"));
        let writes = (0..200).map(|n| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.write(insert(n)).await })
        });
        for w in futures::future::join_all(writes).await {
            w.expect("task").expect("written");
        }
        let check = Connection::open(dir.path().join("db")).expect("db");
        let count: i64 = check.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).expect("count");
        assert_eq!(count, 200);
    }
}
