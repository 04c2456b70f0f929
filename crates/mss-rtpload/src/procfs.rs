//! CPU time and resident memory of a process or a thread, from `/proc`.

use std::path::Path;

/// Time on a CPU and time waiting for one, ns (`/proc/…/schedstat`, ns resolution unlike
/// the clock ticks of `/proc/PID/stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sched {
    /// Time running (user + system).
    pub cpu_ns: u64,
    /// Time runnable but waiting for a CPU (what other work on the machine costs it).
    pub wait_ns: u64,
    /// Times it gave up the CPU to wait (for a packet, a timer): its wake-ups.
    pub voluntary_switches: u64,
    /// Times it was preempted.
    pub involuntary_switches: u64,
}

impl Sched {
    /// `self − earlier`.
    pub fn since(self, earlier: Sched) -> Sched {
        Sched {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            wait_ns: self.wait_ns.saturating_sub(earlier.wait_ns),
            voluntary_switches: self
                .voluntary_switches
                .saturating_sub(earlier.voluntary_switches),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(earlier.involuntary_switches),
        }
    }
}

/// Every thread of process `pid` so far, added up. `None` when the process is gone.
pub fn process_sched(pid: u32) -> Option<Sched> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut sum = Sched::default();
    for task in tasks.flatten() {
        let s = schedstat(&task.path()).unwrap_or_default();
        sum.cpu_ns += s.cpu_ns;
        sum.wait_ns += s.wait_ns;
        sum.voluntary_switches += s.voluntary_switches;
        sum.involuntary_switches += s.involuntary_switches;
    }
    Some(sum)
}

/// The thread named `name` (its `comm`) in this process.
pub fn own_thread_sched(name: &str) -> Option<Sched> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            return schedstat(&task.path());
        }
    }
    None
}

fn schedstat(task: &Path) -> Option<Sched> {
    let text = std::fs::read_to_string(task.join("schedstat")).ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let (cpu_ns, wait_ns) = (fields.next()??, fields.next()??);
    let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
    let count = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Some(Sched {
        cpu_ns,
        wait_ns,
        voluntary_switches: count("voluntary_ctxt_switches:"),
        involuntary_switches: count("nonvoluntary_ctxt_switches:"),
    })
}

/// Resident memory of process `pid` (`VmRSS`), kB; `"self"` for this one.
pub fn rss_kb(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The 1-minute load average and the number of CPUs online, for the report.
pub fn machine_load() -> (f64, usize) {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    (load, cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_readable() {
        let pid = std::process::id();
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(process_sched(pid).is_some_and(|s| s.cpu_ns > 0));
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(process_sched(pid).is_some_and(|s| s.voluntary_switches > 0));
        assert!(rss_kb("self").is_some_and(|kb| kb > 0));
        assert_eq!(process_sched(u32::MAX), None);
    }
}
