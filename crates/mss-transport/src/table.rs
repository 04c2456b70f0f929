//! The table of open TCP and TLS connections: by [`ConnectionId`], by transport and remote
//! address (RFC 3261 §18: connections are indexed by the far end's address, port and
//! transport), and the count of inbound connections per source IP address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use mss_sip::net::{ConnectionId, Transport};
use tokio::sync::mpsc;

/// One open (or opening) connection, as seen by senders.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// TCP, or TLS over TCP.
    pub(crate) transport: Transport,
    /// The far end.
    pub(crate) remote: SocketAddr,
    /// The queue of the connection's writer.
    pub(crate) tx: mpsc::Sender<Bytes>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<ConnectionId, Entry>,
    /// The newest connection to each remote address, for reuse by requests without a
    /// connection (RFC 3261 §18.1.1: "it is RECOMMENDED that this connection be used").
    by_remote: HashMap<(Transport, SocketAddr), ConnectionId>,
    /// Inbound connections per source IP, for `max_tcp_connections_per_ip`.
    per_ip: HashMap<IpAddr, usize>,
}

/// The connection table. A std `Mutex` (not tokio's): every critical section is a few
/// map operations and never awaits.
#[derive(Debug, Default)]
pub(crate) struct ConnectionTable {
    inner: Mutex<Inner>,
}

impl ConnectionTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters more than losing every connection: keep going with the data as it is.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one more inbound connection from `ip`, unless `ip` already has `max`.
    pub(crate) fn reserve_ip(&self, ip: IpAddr, max: usize) -> bool {
        let mut inner = self.lock();
        let count = inner.per_ip.entry(ip).or_insert(0);
        if *count >= max {
            if *count == 0 {
                inner.per_ip.remove(&ip);
            }
            return false;
        }
        *count += 1;
        true
    }

    /// Gives back a slot taken with [`ConnectionTable::reserve_ip`].
    pub(crate) fn release_ip(&self, ip: IpAddr) {
        let mut inner = self.lock();
        if let Some(count) = inner.per_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                inner.per_ip.remove(&ip);
            }
        }
    }

    /// Registers a connection; it becomes the one reused for its remote address.
    pub(crate) fn insert(&self, id: ConnectionId, entry: Entry) {
        let mut inner = self.lock();
        inner.by_remote.insert((entry.transport, entry.remote), id);
        inner.by_id.insert(id, entry);
    }

    /// Forgets a connection (no-op when it is already gone).
    pub(crate) fn remove(&self, id: ConnectionId) {
        let mut inner = self.lock();
        if let Some(entry) = inner.by_id.remove(&id) {
            let key = (entry.transport, entry.remote);
            if inner.by_remote.get(&key) == Some(&id) {
                inner.by_remote.remove(&key);
            }
        }
    }

    /// The connection `id`, if it is still open.
    pub(crate) fn get(&self, id: ConnectionId) -> Option<Entry> {
        self.lock().by_id.get(&id).cloned()
    }

    /// The connection of `transport` to reuse for `remote`, if one is open.
    pub(crate) fn find_remote(
        &self,
        transport: Transport,
        remote: SocketAddr,
    ) -> Option<(ConnectionId, Entry)> {
        let inner = self.lock();
        let id = *inner.by_remote.get(&(transport, remote))?;
        inner.by_id.get(&id).map(|e| (id, e.clone()))
    }

    /// Number of connections in the table.
    pub(crate) fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Inbound connections counted for `ip`.
    #[cfg(test)]
    pub(crate) fn ip_count(&self, ip: IpAddr) -> usize {
        self.lock().per_ip.get(&ip).copied().unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn entry(remote: &str) -> (Entry, mpsc::Receiver<Bytes>) {
        entry_of(Transport::Tcp, remote)
    }

    fn entry_of(transport: Transport, remote: &str) -> (Entry, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(1);
        let remote = remote.parse().unwrap();
        (
            Entry {
                transport,
                remote,
                tx,
            },
            rx,
        )
    }

    #[test]
    fn per_ip_slots_are_bounded_and_released() {
        let t = ConnectionTable::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(t.reserve_ip(ip, 2));
        assert!(t.reserve_ip(ip, 2));
        assert!(!t.reserve_ip(ip, 2));
        t.release_ip(ip);
        assert_eq!(t.ip_count(ip), 1);
        assert!(t.reserve_ip(ip, 2));
        t.release_ip(ip);
        t.release_ip(ip);
        t.release_ip(ip);
        assert_eq!(t.ip_count(ip), 0);
        assert!(!t.reserve_ip(ip, 0));
        assert_eq!(t.ip_count(ip), 0);
    }

    #[test]
    fn remote_index_follows_the_newest_connection() {
        let t = ConnectionTable::default();
        let (a, _ra) = entry("192.0.2.1:5060");
        let (b, _rb) = entry("192.0.2.1:5060");
        t.insert(ConnectionId(1), a);
        t.insert(ConnectionId(2), b);
        let remote = "192.0.2.1:5060".parse().unwrap();
        assert_eq!(
            t.find_remote(Transport::Tcp, remote).map(|(id, _)| id),
            Some(ConnectionId(2))
        );
        // Removing the older one keeps the index on the newer one.
        t.remove(ConnectionId(1));
        assert_eq!(
            t.find_remote(Transport::Tcp, remote).map(|(id, _)| id),
            Some(ConnectionId(2))
        );
        t.remove(ConnectionId(2));
        assert!(t.find_remote(Transport::Tcp, remote).is_none());
        assert!(t.get(ConnectionId(2)).is_none());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn tcp_and_tls_to_one_address_are_told_apart() {
        let t = ConnectionTable::default();
        let (a, _ra) = entry_of(Transport::Tcp, "192.0.2.1:5061");
        let (b, _rb) = entry_of(Transport::Tls, "192.0.2.1:5061");
        t.insert(ConnectionId(1), a);
        t.insert(ConnectionId(2), b);
        let remote = "192.0.2.1:5061".parse().unwrap();
        let id = |tr| t.find_remote(tr, remote).map(|(id, _)| id);
        assert_eq!(id(Transport::Tcp), Some(ConnectionId(1)));
        assert_eq!(id(Transport::Tls), Some(ConnectionId(2)));
        t.remove(ConnectionId(2));
        assert_eq!(id(Transport::Tls), None);
        assert_eq!(id(Transport::Tcp), Some(ConnectionId(1)));
    }
}
