//! The writer of the daily CSV files of call records (DESIGN §8 "Records"), on a thread of
//! its own.
//!
//! The SIP worker must never wait for a disk, so it only hands a finished record to
//! [`CdrSender::write`] (a push onto an unbounded channel) once the record is in the
//! database; this thread appends it to `DATA_DIR/cdr/YYYY-MM-DD.csv` (format:
//! `cdr_csv.rs`). The database stays the record of truth: a line that cannot be written is
//! logged with the file's path and the record's id, and mss goes on. Each record opens its
//! file anew (append, create), so a file moved away or a folder deleted by an admin comes
//! back with the next record; a new file starts with the header line. When every sender is
//! gone the thread ends, after the last queued line: [`CdrThread::join`] waits for it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use mss_store::CallRecord;

use super::cdr_csv;

/// The folder of the CSV files inside the data folder.
pub(crate) const CDR_DIR: &str = "cdr";

/// Why one record could not be appended to its CSV file.
#[derive(Debug, thiserror::Error)]
#[error("cannot append call {id} to {}: {source}", path.display())]
pub(crate) struct CdrError {
    /// The record's id.
    id: String,
    /// The file (or, when the folder could not be made, the folder).
    path: PathBuf,
    /// The operating system's error.
    source: std::io::Error,
}

/// Hands finished records to the writer thread; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub(crate) struct CdrSender {
    tx: Sender<CallRecord>,
}

impl CdrSender {
    /// Queues `record` for its CSV file. Only a finished record that is in the database
    /// belongs there; if the thread is gone (only at the very end) the record is dropped
    /// with a log line.
    pub(crate) fn write(&self, record: CallRecord) {
        if let Err(mpsc::SendError(r)) = self.tx.send(record) {
            tracing::warn!(
                "call {} not written to its CSV file: the writer has stopped",
                r.id
            );
        }
    }
}

/// The writer thread, to be joined at the end.
#[derive(Debug)]
pub(crate) struct CdrThread {
    handle: JoinHandle<()>,
}

impl CdrThread {
    /// Waits until every queued record is written; call it once every [`CdrSender`] is
    /// dropped (it blocks: call it off the async threads).
    pub(crate) fn join(self) {
        if self.handle.join().is_err() {
            tracing::error!("the CSV writer of call records had panicked");
        }
    }
}

/// Starts the writer thread for the files in `data_dir/cdr/`.
///
/// # Errors
/// The operating system's, when the thread cannot be started.
pub(crate) fn start(data_dir: &Path) -> std::io::Result<(CdrSender, CdrThread)> {
    let dir = data_dir.join(CDR_DIR);
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("mss-cdr-writer".into())
        .spawn(move || run(&dir, rx))?;
    Ok((CdrSender { tx }, CdrThread { handle }))
}

/// Writes every record received until the senders are gone.
fn run(dir: &Path, rx: Receiver<CallRecord>) {
    for record in rx {
        if let Err(e) = append(dir, &record) {
            tracing::warn!("{e}");
        }
    }
}

/// Appends `record` to its day's file in `dir`, creating the folder, and the file with
/// its header, if missing.
pub(crate) fn append(dir: &Path, record: &CallRecord) -> Result<PathBuf, CdrError> {
    let fail = |path: &Path| {
        let id = record.id.clone();
        let path = path.to_path_buf();
        move |source| CdrError { id, path, source }
    };
    std::fs::create_dir_all(dir).map_err(fail(dir))?;
    let path = dir.join(cdr_csv::file_name(record));
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(fail(&path))?;
    let empty = file.metadata().map_err(fail(&path))?.len() == 0;
    let mut text = String::new();
    if empty {
        text.push_str(cdr_csv::HEADER);
    }
    text.push_str(&cdr_csv::line(record));
    // One write per record: lines of two records never interleave.
    file.write_all(text.as_bytes()).map_err(fail(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use mss_store::{CallDirection, CallDisposition, EndedBy};

    use super::*;

    fn record(id: &str, started_at: i64) -> CallRecord {
        CallRecord {
            id: id.into(),
            started_at,
            answered_at: None,
            ended_at: Some(started_at + 3_000),
            caller: "101".into(),
            callee: "102".into(),
            answered_by: None,
            direction: CallDirection::Internal,
            line: None,
            disposition: Some(CallDisposition::NoAnswer),
            sip_code: Some(480),
            ended_by: Some(EndedBy::Callee),
            forwarded_from: None,
        }
    }

    /// 2026-12-07T23:59:59Z.
    const LATE: i64 = 1_796_687_999_000;

    #[test]
    fn records_go_to_the_file_of_their_day_with_one_header() {
        let data = tempfile::tempdir().unwrap();
        let (sender, thread) = start(data.path()).unwrap();
        sender.write(record("c-1", LATE - 5_000));
        sender.clone().write(record("c-2", LATE));
        sender.write(record("c-3", LATE + 1_000));
        drop(sender);
        thread.join();
        let dir = data.path().join(CDR_DIR);
        let day1 = std::fs::read_to_string(dir.join("2026-12-07.csv")).unwrap();
        let lines: Vec<&str> = day1.split_inclusive("\r\n").collect();
        assert_eq!(lines.len(), 3, "{day1}");
        assert_eq!(lines[0], cdr_csv::HEADER);
        assert!(lines[1].starts_with("c-1,"));
        assert!(lines[2].starts_with("c-2,"));
        let day2 = std::fs::read_to_string(dir.join("2026-12-08.csv")).unwrap();
        assert!(day2.starts_with(cdr_csv::HEADER));
        assert!(day2.ends_with(&cdr_csv::line(&record("c-3", LATE + 1_000))));
    }

    #[test]
    fn appends_to_an_existing_file_without_a_second_header() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join(CDR_DIR);
        let first = append(&dir, &record("c-1", LATE)).unwrap();
        let second = append(&dir, &record("c-2", LATE)).unwrap();
        assert_eq!(first, second);
        let text = std::fs::read_to_string(&first).unwrap();
        assert_eq!(text.matches("id,started_at").count(), 1);
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn a_failed_write_names_the_path_and_the_call() {
        let data = tempfile::tempdir().unwrap();
        // A file where the folder should be.
        let dir = data.path().join(CDR_DIR);
        std::fs::write(&dir, b"not a folder").unwrap();
        let err = append(&dir, &record("c-9", LATE)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("c-9"), "{text}");
        assert!(text.contains(&dir.display().to_string()), "{text}");
        // The thread logs it and goes on.
        let (sender, thread) = start(data.path()).unwrap();
        sender.write(record("c-10", LATE));
        drop(sender);
        thread.join();
    }
}
