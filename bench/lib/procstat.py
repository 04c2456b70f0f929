"""Per-process CPU time and memory from /proc (Linux only, stdlib only).

/proc/stat under-counts CPU in the sandboxes we run on, so CPU is read per
process: utime+stime of /proc/PID/stat, which covers all threads of the
process. A multi-process server (Kamailio) is measured as the sum over the
main process and all its descendants.
"""
import os

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    end = data.rfind(")")
    if end < 0:
        return None
    return data[end + 2:].split()


def descendants(root):
    """root and every live process below it."""
    children = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [root]
    for name in entries:
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is None or len(fields) < 2:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids):
    """Sum of utime+stime (seconds) of the given processes (missing ones count 0)."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        # after the name: state(0) ppid(1) ... utime(11) stime(12)
        if fields is None or len(fields) < 13:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / float(CLK_TCK)


def _status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return _status_kb(pid, "VmRSS")


def memory_kb(pids):
    """Memory of a server in KiB.

    One process: its peak resident set (VmHWM). Several processes sharing
    memory (Kamailio's shared memory pool): the sum of their proportional set
    sizes (Pss), which counts every shared page once; a plain sum of RSS
    would count the shared pool once per process.
    """
    if len(pids) == 1:
        return _status_kb(pids[0], "VmHWM")
    return sum(_pss_kb(p) for p in pids)


def current_kb(pids):
    """Memory of a server in KiB right now: one process its resident set (VmRSS);
    several processes sharing memory (Kamailio) the sum of their Pss, as memory_kb."""
    if len(pids) == 1:
        return _status_kb(pids[0], "VmRSS")
    return sum(_pss_kb(p) for p in pids)


def rss_sum_kb(pids):
    """Plain sum of VmRSS (over-counts shared memory; reported for reference)."""
    return sum(_status_kb(p, "VmRSS") for p in pids)
