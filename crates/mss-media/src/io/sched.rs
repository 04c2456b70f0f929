//! How the relay thread asks the kernel for a CPU: a short EEVDF slice by default, the
//! real-time class (`SCHED_FIFO`) when configured and permitted.
//!
//! Why: the relay runs for tens of microseconds each time a packet arrives and sleeps in
//! between. Under Linux's EEVDF scheduler (6.6 and later) a woken task with the default
//! slice (0.75 ms × (1 + log2 CPUs): 1.5 ms on 2 CPUs) may wait for the running task's
//! slice to end before it gets the CPU: with other busy threads on the machine, packets
//! wait in the socket for milliseconds (added jitter). Linux 6.12 lets a `SCHED_OTHER`
//! thread ask for a shorter slice through `sched_attr::sched_runtime` (clamped to
//! 0.1–100 ms, no privilege needed): its virtual deadline comes earlier, so on wake-up
//! it preempts a task with a longer slice (kernel commits "sched/eevdf: Use
//! sched_attr::sched_runtime to set request/slice suggestion" and "Allow shorter slices
//! to wakeup-preempt"). A shorter slice gives no more CPU time than the thread's fair
//! share: the relay can never starve the SIP worker with it. Older kernels accept and
//! ignore the field.
//!
//! `SCHED_FIFO` (what Asterisk's `-p` and FreeSWITCH's `-rp` ask for) runs the thread
//! before every ordinary thread as long as it is runnable. It needs `CAP_SYS_NICE` or an
//! `RLIMIT_RTPRIO`; when refused the thread keeps the short slice and the refusal is
//! reported. It is off by default: a relay flooded beyond one core would hold that core
//! (the kernel's real-time throttling leaves ordinary threads 5 % of it), so it is for
//! machines with a core to spare.

#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::mem;
use std::time::Duration;

/// How the relay thread is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduling {
    /// The slice asked of EEVDF for `SCHED_OTHER` (`None`: the kernel's default). The
    /// kernel clamps it to 0.1–100 ms.
    pub slice: Option<Duration>,
    /// `SCHED_FIFO` at this priority (1–99) when permitted (`None`: never).
    pub realtime: Option<u8>,
}

/// The relay's default slice: about the CPU time of one wake-up at 1,000 calls (≈ 15
/// packets × 5 µs), and the shortest the kernel grants.
pub const DEFAULT_SLICE: Duration = Duration::from_micros(100);

impl Default for Scheduling {
    /// A short slice ([`DEFAULT_SLICE`]), no real-time class.
    fn default() -> Scheduling {
        Scheduling {
            slice: Some(DEFAULT_SLICE),
            realtime: None,
        }
    }
}

/// The real-time priority a relay asks for by default ([`Scheduling::auto`]), as Asterisk's
/// `-p` does.
pub const DEFAULT_REALTIME_PRIORITY: u8 = 10;

impl Scheduling {
    /// What `mss serve` asks for unless told otherwise: [`SCHED_FIFO`](Applied::Realtime)
    /// at [`DEFAULT_REALTIME_PRIORITY`] on a machine with a core to spare (two or more
    /// CPUs: a real-time relay flooded beyond a core holds that core, and a single core
    /// would leave the SIP worker 5 %), else — and wherever the class is refused — the
    /// short slice of [`Scheduling::default`].
    ///
    /// Why real-time: an ordinary thread, however short its slice, waits whenever another
    /// task holds its CPU until the next tick (kernel threads that reclaim memory,
    /// builds, the other programs of the machine), and datagrams wait with it: on the
    /// 2-CPU benchmark machine that was the whole of the relay's added jitter p99
    /// (BENCHMARKS.md, the media block). Media servers are run that way: Asterisk's
    /// `-p`, FreeSWITCH's `-rp` and its systemd unit's `CPUSchedulingPolicy=rr`.
    pub fn auto() -> Scheduling {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Scheduling {
            realtime: (cpus >= 2).then_some(DEFAULT_REALTIME_PRIORITY),
            ..Scheduling::default()
        }
    }

    /// The kernel's defaults: nothing asked.
    pub const KERNEL_DEFAULT: Scheduling = Scheduling {
        slice: None,
        realtime: None,
    };
}

/// What the relay thread got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulingOutcome {
    /// The class and slice in force.
    pub applied: Applied,
    /// Why the real-time class was refused (the thread runs as `applied` says instead).
    pub realtime_refused: Option<String>,
    /// Why the slice was refused (the thread keeps the kernel's default slice).
    pub slice_refused: Option<String>,
}

/// The scheduling class in force on the relay thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// `SCHED_FIFO` at this priority.
    Realtime(u8),
    /// `SCHED_OTHER` with this slice asked for (a kernel before 6.12 ignores it).
    Slice(Duration),
    /// The kernel's defaults.
    KernelDefault,
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Applied::Realtime(p) => write!(f, "SCHED_FIFO priority {p}"),
            Applied::Slice(s) => write!(f, "SCHED_OTHER, slice {} µs", s.as_micros()),
            Applied::KernelDefault => f.write_str("SCHED_OTHER, the kernel's default slice"),
        }
    }
}

/// `struct sched_attr` of `sched_setattr(2)` (SCHED_ATTR_SIZE_VER1: with the
/// utilisation clamps, 56 bytes).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

/// `SCHED_FLAG_RESET_ON_FORK`: a thread this one starts does not inherit the class.
const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;

/// Applies `wanted` to the calling thread.
pub(crate) fn apply(wanted: Scheduling) -> SchedulingOutcome {
    let mut outcome = SchedulingOutcome {
        applied: Applied::KernelDefault,
        realtime_refused: None,
        slice_refused: None,
    };
    if let Some(priority) = wanted.realtime {
        let attr = SchedAttr {
            sched_policy: libc::SCHED_FIFO as u32,
            sched_flags: SCHED_FLAG_RESET_ON_FORK,
            sched_priority: u32::from(priority.clamp(1, 99)),
            ..SchedAttr::default()
        };
        match set(attr) {
            Ok(()) => {
                outcome.applied = Applied::Realtime(priority.clamp(1, 99));
                return outcome;
            }
            Err(e) => outcome.realtime_refused = Some(format!("SCHED_FIFO refused: {e}")),
        }
    }
    if let Some(slice) = wanted.slice {
        // Keep the thread's nice value: asking for a lower one than it has needs privilege.
        let result = get().and_then(|current| {
            set(SchedAttr {
                sched_policy: libc::SCHED_OTHER as u32,
                sched_nice: current.sched_nice,
                sched_runtime: u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX),
                ..SchedAttr::default()
            })
        });
        match result {
            Ok(()) => outcome.applied = Applied::Slice(slice),
            Err(e) => outcome.slice_refused = Some(format!("EEVDF slice refused: {e}")),
        }
    }
    outcome
}

/// The calling thread's attributes.
fn get() -> io::Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    // SAFETY: `attr` is a live, writable sched_attr of the size passed; pid 0 is the
    // calling thread; the kernel writes at most `size` bytes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut SchedAttr,
            mem::size_of::<SchedAttr>() as libc::c_uint,
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(attr)
}

/// Sets the calling thread's attributes.
fn set(mut attr: SchedAttr) -> io::Result<()> {
    attr.size = mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `attr` is a live sched_attr whose `size` field says its size; pid 0 is
    // the calling thread; the kernel only reads it.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_asks_for_real_time_only_with_a_core_to_spare() {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let auto = Scheduling::auto();
        assert_eq!(
            auto.slice,
            Some(DEFAULT_SLICE),
            "the fallback where refused"
        );
        assert_eq!(
            auto.realtime,
            (cpus >= 2).then_some(DEFAULT_REALTIME_PRIORITY),
            "{cpus} CPUs"
        );
    }

    #[test]
    fn the_struct_is_the_kernels_size() {
        assert_eq!(mem::size_of::<SchedAttr>(), 56);
    }

    #[test]
    fn a_slice_is_granted_without_privilege_and_kept_by_the_thread() {
        let outcome = std::thread::spawn(|| {
            let outcome = apply(Scheduling::default());
            let now = get().map(|a| (a.sched_policy, a.sched_runtime));
            (outcome, now)
        })
        .join()
        .unwrap();
        assert_eq!(outcome.0.applied, Applied::Slice(DEFAULT_SLICE));
        assert_eq!(outcome.0.slice_refused, None);
        let (policy, runtime) = outcome.1.unwrap();
        assert_eq!(policy, libc::SCHED_OTHER as u32);
        // A kernel before 6.12 reports 0 (it has no per-task slice): then nothing to check.
        if runtime != 0 {
            assert_eq!(runtime, DEFAULT_SLICE.as_nanos() as u64);
        }
    }

    #[test]
    fn realtime_is_used_when_permitted_and_reported_when_refused() {
        let outcome = std::thread::spawn(|| {
            apply(Scheduling {
                slice: Some(DEFAULT_SLICE),
                realtime: Some(10),
            })
        })
        .join()
        .unwrap();
        match outcome.applied {
            Applied::Realtime(p) => assert_eq!((p, outcome.realtime_refused), (10, None)),
            // Unprivileged: refused, named, and the slice applied instead.
            other => {
                assert_eq!(other, Applied::Slice(DEFAULT_SLICE));
                assert!(outcome.realtime_refused.unwrap().contains("SCHED_FIFO"));
            }
        }
    }
}
