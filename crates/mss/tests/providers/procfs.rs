//! Who holds a UDP port, from Linux's `/proc`: the readiness and ownership
//! checks of `support.rs`.
//!
//! Kamailio (and SIPp) bind with `SO_REUSEADDR`, so a provider can come up
//! on a port that another process already holds and silently share it. A
//! provider is only "ready" when every socket on its port is its own.

use std::collections::HashSet;
use std::fs;
use std::io;

/// The inodes of the UDP sockets bound to `127.0.0.1:port` or `0.0.0.0:port`
/// in a `/proc/net/udp` table (addresses are little-endian hex there).
pub fn udp_inodes_on_port(table: &str, port: u16) -> Vec<u64> {
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let inode = fields.get(9)?.parse().ok()?;
            wanted.iter().any(|w| w == local).then_some(inode)
        })
        .collect()
}

/// The inodes of the UDP sockets bound to `port` on 127.0.0.1 or 0.0.0.0.
///
/// # Errors
///
/// Reading `/proc/net/udp` failed.
pub fn bound_inodes(port: u16) -> io::Result<Vec<u64>> {
    Ok(udp_inodes_on_port(
        &fs::read_to_string("/proc/net/udp")?,
        port,
    ))
}

/// The live (not zombie) processes of process group `pgid`.
pub fn group_pids(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid pgrp ...": comm may hold spaces and ')'.
            let (_, rest) = stat.rsplit_once(')')?;
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            let pgrp: u32 = fields.nth(1)?.parse().ok()?;
            (pgrp == pgid && state != "Z").then_some(pid)
        })
        .collect()
}

/// The socket inodes held open by the processes of group `pgid`.
pub fn group_socket_inodes(pgid: u32) -> HashSet<u64> {
    let mut inodes = HashSet::new();
    for pid in group_pids(pgid) {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok());
            if let Some(inode) = inode {
                inodes.insert(inode);
            }
        }
    }
    inodes
}

/// Who holds a UDP port, seen from one process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortOwner {
    /// Nothing is bound to the port yet.
    Nobody,
    /// Only sockets of the group are bound to it.
    Group,
    /// Some other process holds a socket on it too.
    Foreign,
}

/// Who holds `port`, seen from process group `pgid`.
///
/// # Errors
///
/// Reading `/proc/net/udp` failed.
pub fn port_owner(port: u16, pgid: u32) -> io::Result<PortOwner> {
    let bound = bound_inodes(port)?;
    if bound.is_empty() {
        return Ok(PortOwner::Nobody);
    }
    let ours = group_socket_inodes(pgid);
    if bound.iter().all(|inode| ours.contains(inode)) {
        Ok(PortOwner::Group)
    } else {
        Ok(PortOwner::Foreign)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_table_matches_loopback_and_wildcard_only() {
        let table = "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 111 2\n\
            1: 00000000:13C5 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 222 2\n\
            2: 0200007F:13C6 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 333 2\n";
        assert_eq!(udp_inodes_on_port(table, 0x13C4), vec![111]);
        assert_eq!(udp_inodes_on_port(table, 0x13C5), vec![222]);
        assert!(udp_inodes_on_port(table, 0x13C6).is_empty());
    }

    #[test]
    fn own_socket_is_seen_as_the_group_s() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let inodes = bound_inodes(port).unwrap();
        assert_eq!(inodes.len(), 1);
        // This test process is not a group leader necessarily: check the fds directly.
        let ours = group_socket_inodes(group_of_self());
        assert!(ours.contains(&inodes[0]));
    }

    fn group_of_self() -> u32 {
        let stat = fs::read_to_string("/proc/self/stat").unwrap();
        let (_, rest) = stat.rsplit_once(')').unwrap();
        rest.split_whitespace().nth(2).unwrap().parse().unwrap()
    }
}
