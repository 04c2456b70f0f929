//! The writer of the daily CSV files of call records (DESIGN §8 "Records"), on a thread of
//! its own.
//!
//! The SIP worker must never wait for a disk, so it only queues a finished record with
//! [`CdrSender::queue`] (a push under an uncontended lock) once the record is in the
//! database, and wakes this thread with [`CdrSender::wake`] at most every
//! [`CDR_WAKE_DELAY`] (the worker's `cdr_wake_at`): at thousands of calls per second one
//! wake-up writes many records, where a wake-up per record made the worker's CPU switch
//! to this thread for each call (issue 14, docs/perf-log.md "Calls round 4"). This thread
//! appends the records to `DATA_DIR/cdr/YYYY-MM-DD.csv` (format: `cdr_csv.rs`), one write
//! per file and batch. The database stays the record of truth: a line that cannot be
//! written is logged with the file's path and the record's id, and mss goes on. The day's
//! file stays open between batches ([`DayFile`]); before each batch one `stat` of its path
//! checks that the open file is still the one there, and when it is not (moved away,
//! deleted, its folder deleted by an admin) the file is opened anew (append, create), so
//! it comes back with the next batch; a new file starts with the header line. When every
//! sender is gone the thread writes what is still queued and ends: [`CdrThread::join`]
//! waits for it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mss_store::CallRecord;

use super::cdr_csv;

/// The folder of the CSV files inside the data folder.
pub(crate) const CDR_DIR: &str = "cdr";

/// How long a queued record waits at most for the worker to wake the writer: the CSV
/// line of a call appears up to this much after its record was committed.
pub(crate) const CDR_WAKE_DELAY: Duration = Duration::from_millis(20);

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
/// The worker's handle on the writer: a queue of finished records and the thread's
/// wake-up.
#[derive(Debug, Clone)]
pub(crate) struct CdrSender {
    queued: Arc<Mutex<Vec<CallRecord>>>,
    nudge: Sender<()>,
}

impl CdrSender {
    /// Queues `record` for its CSV file; it is written at the next [`CdrSender::wake`].
    pub(crate) fn queue(&self, record: CallRecord) {
        lock(&self.queued).push(record);
    }

    /// True while records wait for a [`CdrSender::wake`].
    pub(crate) fn has_queued(&self) -> bool {
        !lock(&self.queued).is_empty()
    }

    /// Wakes the writer for what is queued (logged when the writer has stopped: the
    /// records stay in the database).
    pub(crate) fn wake(&self) {
        if self.nudge.send(()).is_err() {
            let lost = std::mem::take(&mut *lock(&self.queued));
            for r in lost {
                tracing::warn!(
                    "call {} not written to its CSV file: the writer has stopped",
                    r.id
                );
            }
        }
    }

    /// Queues `record` and wakes the writer at once (the records of calls a restart found
    /// interrupted).
    pub(crate) fn write(&self, record: CallRecord) {
        self.queue(record);
        self.wake();
    }
}

/// The queue, also after a thread panicked while holding it (a `Vec` push or take
/// leaves nothing half done).
fn lock(queued: &Mutex<Vec<CallRecord>>) -> std::sync::MutexGuard<'_, Vec<CallRecord>> {
    queued
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
    let (nudge, rx) = mpsc::channel();
    let queued = Arc::new(Mutex::new(Vec::new()));
    let theirs = Arc::clone(&queued);
    let handle = std::thread::Builder::new()
        .name("mss-cdr-writer".into())
        .spawn(move || run(&dir, &theirs, rx))?;
    Ok((CdrSender { queued, nudge }, CdrThread { handle }))
}

/// Writes what is queued at each wake-up, and once more when every sender is gone.
fn run(dir: &Path, queued: &Mutex<Vec<CallRecord>>, rx: Receiver<()>) {
    let mut open = None;
    let mut batch = Vec::new();
    loop {
        let more = rx.recv().is_ok();
        while rx.try_recv().is_ok() {}
        std::mem::swap(&mut batch, &mut *lock(queued));
        for e in append_all(dir, &batch, &mut open) {
            tracing::warn!("{e}");
        }
        batch.clear();
        if !more {
            break;
        }
    }
}

/// Appends `records` to their files, one write per run of records of the same day;
/// returns the errors (each names a file and the first record of its run).
fn append_all(dir: &Path, records: &[CallRecord], open: &mut Option<DayFile>) -> Vec<CdrError> {
    let mut errors = Vec::new();
    let mut rest = records;
    while let Some(first) = rest.first() {
        let name = cdr_csv::file_name(first);
        let run = rest
            .iter()
            .take_while(|r| cdr_csv::file_name(r) == name)
            .count();
        if let Err(e) = append_with(dir, &rest[..run], open) {
            errors.push(e);
        }
        rest = &rest[run..];
    }
    errors
}

#[derive(Debug)]
struct DayFile {
    /// Where it was opened.
    path: PathBuf,
    /// The open file (append mode).
    file: File,
    /// Its device and inode: the file at `path` must still be this one.
    identity: (u64, u64),
}

impl DayFile {
    /// True when `path` still names the open file (one `stat`): it was not moved away
    /// or deleted, nor its folder.
    fn still_at_its_path(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity)
    }
}

/// Appends `record` to its day's file in `dir`, creating the folder, and the file with
/// its header, if missing.
#[cfg(test)]
pub(crate) fn append(dir: &Path, record: &CallRecord) -> Result<PathBuf, CdrError> {
    append_with(dir, std::slice::from_ref(record), &mut None)
}

/// [`append`] through `open`, the file of the previous record: kept when it is the file of
/// `record`'s day and still at its path, else replaced by the right one, opened (created
/// with its header if missing); left empty when that fails.
/// Appends `records` (at least one, all of the same day) to their day's file in one
/// write.
fn append_with(
    dir: &Path,
    records: &[CallRecord],
    open: &mut Option<DayFile>,
) -> Result<PathBuf, CdrError> {
    let Some(first) = records.first() else {
        return Ok(dir.to_path_buf());
    };
    let fail = |path: &Path| {
        let id = first.id.clone();
        let path = path.to_path_buf();
        move |source| CdrError { id, path, source }
    };
    let path = dir.join(cdr_csv::file_name(first));
    let reuse = open
        .as_ref()
        .is_some_and(|f| f.path == path && f.still_at_its_path());
    let mut text = String::new();
    if !reuse {
        *open = None;
        std::fs::create_dir_all(dir).map_err(fail(dir))?;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(fail(&path))?;
        let meta = file.metadata().map_err(fail(&path))?;
        if meta.len() == 0 {
            text.push_str(cdr_csv::HEADER);
        }
        *open = Some(DayFile {
            path: path.clone(),
            file,
            identity: (meta.dev(), meta.ino()),
        });
    }
    for record in records {
        text.push_str(&cdr_csv::line(record));
    }
    let Some(day) = open.as_mut() else {
        return Ok(path);
    };
    // One write per batch: whole lines only, never a line split by another's.
    if let Err(e) = day.file.write_all(text.as_bytes()) {
        *open = None;
        return Err(fail(&path)(e));
    }
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
            transferred_by: None,
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
    fn queued_records_are_written_at_the_wake_or_when_the_senders_are_gone() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join(CDR_DIR);
        let (sender, thread) = start(data.path()).unwrap();
        // One batch, the days interleaved: three runs, one header per file.
        sender.queue(record("c-1", LATE));
        sender.queue(record("c-2", LATE + 1_000));
        sender.queue(record("c-3", LATE));
        assert!(sender.has_queued());
        sender.wake();
        let day1 = dir.join("2026-12-07.csv");
        for _ in 0..500 {
            if std::fs::read_to_string(&day1).is_ok_and(|t| t.contains("c-3,")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!sender.has_queued());
        // Queued without a wake-up: written when the last sender is dropped.
        sender.clone().queue(record("c-4", LATE));
        drop(sender);
        thread.join();
        let text = std::fs::read_to_string(&day1).unwrap();
        let ids: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(ids, ["c-1", "c-3", "c-4"], "{text}");
        assert_eq!(text.matches("id,started_at").count(), 1, "{text}");
        let day2 = std::fs::read_to_string(dir.join("2026-12-08.csv")).unwrap();
        assert_eq!(day2.lines().count(), 2, "{day2}");
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
    fn a_file_moved_away_or_deleted_while_open_comes_back() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join(CDR_DIR);
        let mut open = None;
        let path = append_with(&dir, &[record("c-1", LATE)], &mut open).unwrap();
        append_with(&dir, &[record("c-2", LATE)], &mut open).unwrap();
        let moved = data.path().join("moved.csv");
        std::fs::rename(&path, &moved).unwrap();
        append_with(&dir, &[record("c-3", LATE)], &mut open).unwrap();
        let old = std::fs::read_to_string(&moved).unwrap();
        assert_eq!(old.lines().count(), 3, "header, c-1, c-2: {old}");
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(new.starts_with(cdr_csv::HEADER), "{new}");
        assert!(new.ends_with(&cdr_csv::line(&record("c-3", LATE))), "{new}");
        // The whole folder deleted.
        std::fs::remove_dir_all(&dir).unwrap();
        append_with(&dir, &[record("c-4", LATE)], &mut open).unwrap();
        let again = std::fs::read_to_string(&path).unwrap();
        assert_eq!(again.lines().count(), 2, "{again}");
        assert!(again.starts_with(cdr_csv::HEADER));
        // The next day's record opens the next day's file.
        let next = append_with(&dir, &[record("c-5", LATE + 1_000)], &mut open).unwrap();
        assert_ne!(next, path);
        assert!(std::fs::read_to_string(&next)
            .unwrap()
            .starts_with(cdr_csv::HEADER));
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
