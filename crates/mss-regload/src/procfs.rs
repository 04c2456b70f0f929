//! CPU time of a process and the machine's load, from `/proc`.

/// Clock ticks per second of `/proc/PID/stat` (Linux's USER_HZ, 100 on every
/// architecture it exports to user space).
const USER_HZ: f64 = 100.0;

/// User + system CPU time of process `pid` so far, in seconds (threads that exited
/// included); `None` when the process is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The same for this process.
pub fn own_cpu_seconds() -> Option<f64> {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// utime + stime of a `/proc/PID/stat` line, in seconds. The command name in
/// parentheses may contain spaces, so fields are counted after its closing parenthesis.
fn stat_cpu(line: &str) -> Option<f64> {
    let after = &line[line.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // Fields 3 (state) … 13 come first; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The load averages of `/proc/loadavg` (1, 5, 15 minutes), as written there.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_the_command_name() {
        let line = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1";
        assert_eq!(stat_cpu(line), Some(3.0));
        assert!(own_cpu_seconds().is_some());
        assert_eq!(loadavg().split(' ').count(), 3);
    }
}
