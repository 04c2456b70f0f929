//! Row types: what the services hand to the store and get back from it.
//!
//! Times are unix milliseconds ([`UnixMillis`]) because they must survive a restart, unlike
//! the `Instant`s the protocol machines use; the wiring converts between the two.

/// Milliseconds since the unix epoch (UTC).
pub type UnixMillis = i64;

/// What identifies one binding of a user (RFC 5626 §6 / RFC 3261 §10.3 step 7).
///
/// A contact with a `+sip.instance` is keyed by the instance and its `reg-id`, so a device
/// that re-registers from a new address replaces its old binding; any other contact is keyed
/// by its URI text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BindingKey {
    /// `+sip.instance` (as received, e.g. `"<urn:uuid:...>"`) and optional `reg-id`.
    Instance {
        /// The `+sip.instance` parameter value.
        instance: String,
        /// The `reg-id` parameter (RFC 5626 §4.2), if any.
        reg_id: Option<u32>,
    },
    /// The contact URI, as it came in the Contact header.
    Contact(String),
}

impl BindingKey {
    /// The key as the single text stored in the `bindings.binding_key` column. The prefix
    /// keeps the two kinds apart: a contact URI can never collide with an instance key.
    pub fn to_column(&self) -> String {
        match self {
            BindingKey::Instance {
                instance,
                reg_id: Some(id),
            } => format!("i:{id}:{instance}"),
            BindingKey::Instance {
                instance,
                reg_id: None,
            } => format!("i:-:{instance}"),
            BindingKey::Contact(uri) => format!("c:{uri}"),
        }
    }
}

/// One registered contact of a local user, as the registrar keeps it across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRecord {
    /// The user part of the address-of-record (`101` of `sip:101@pbx.example.com`).
    pub user: String,
    /// The contact URI exactly as it came in the Contact header.
    pub contact: String,
    /// The `+sip.instance` Contact parameter (RFC 5626 §4.1), if any.
    pub instance: Option<String>,
    /// The `reg-id` Contact parameter (RFC 5626 §4.2), if any.
    pub reg_id: Option<u32>,
    /// The `q` Contact parameter in thousandths (`q=0.7` → 700), if any.
    pub q_milli: Option<u16>,
    /// When the binding lapses unless refreshed.
    pub expires_at: UnixMillis,
    /// Call-ID of the REGISTER that made or last refreshed the binding (RFC 3261 §10.3
    /// step 7 compares it with later REGISTERs).
    pub call_id: String,
    /// CSeq number of that REGISTER.
    pub cseq: u32,
    /// Transport of the flow the REGISTER came on: `"UDP"`, `"TCP"`, ...
    pub transport: String,
    /// Remote socket address of that flow (`"192.0.2.7:5060"`), where requests go back.
    pub source: String,
    /// The `User-Agent` header of the REGISTER, if any.
    pub user_agent: Option<String>,
    /// When the binding was first or last written.
    pub registered_at: UnixMillis,
}

impl BindingRecord {
    /// The key this binding is stored under: instance and reg-id when an instance is
    /// present, the contact URI otherwise.
    pub fn key(&self) -> BindingKey {
        match &self.instance {
            Some(instance) => BindingKey::Instance {
                instance: instance.clone(),
                reg_id: self.reg_id,
            },
            None => BindingKey::Contact(self.contact.clone()),
        }
    }
}

/// One change a REGISTER makes to a user's bindings; a REGISTER's changes are applied
/// together, atomically, by [`crate::Store::apply_binding_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingChange {
    /// Add the binding, or replace the one with the same [`BindingKey`].
    Upsert(BindingRecord),
    /// Remove the binding with this key (`expires=0` on that contact); absent is not an error.
    Remove(BindingKey),
}

/// An instant message to keep for an offline user, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The recipient's user part.
    pub recipient: String,
    /// The original `From` header value, replayed unchanged on delivery.
    pub sender: String,
    /// The original `To` header value, if it is to be kept.
    pub original_to: Option<String>,
    /// The `Content-Type` header value.
    pub content_type: String,
    /// The body, byte for byte.
    pub body: Vec<u8>,
    /// When the MESSAGE arrived (becomes the `Date` header on delivery).
    pub received_at: UnixMillis,
    /// When the message is dropped if still undelivered.
    pub expires_at: UnixMillis,
}

/// A stored offline message with the id the store gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Unique, monotonically increasing (never reused, even after deletion), so ordering by
    /// id is arrival order.
    pub id: i64,
    /// The message as it was stored.
    pub message: NewMessage,
}

/// What [`crate::Store::insert_message_if_below`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored and committed, with this id.
    Stored(i64),
    /// Not stored: the recipient already has this many unexpired messages (at least the
    /// limit). The SIP answer is `480 Offline Message Store Full`.
    Full {
        /// How many unexpired messages the recipient has.
        stored: u64,
    },
}

/// Number of stored messages of one user (`GET /api/messages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMessageCount {
    /// The recipient's user part.
    pub user: String,
    /// How many unexpired messages are waiting for them.
    pub stored: u64,
}

/// The registration dialog state of one external line, kept so that `call_id = same` can
/// continue the same Call-ID and CSeq after a restart (RFC 3261 §10.2), and so that an
/// `auto` line that switched to fresh Call-IDs stays switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRecord {
    /// The line's name (`provider1` of `[line:provider1]`).
    pub name: String,
    /// Call-ID of the line's REGISTERs.
    pub call_id: String,
    /// From tag of the line's REGISTERs.
    pub from_tag: String,
    /// The last CSeq number sent; the next REGISTER uses one more.
    pub last_cseq: u32,
    /// The Call-ID policy the line used when this was written, by its admin API name
    /// (`same`, `fresh`, `auto`, `auto_fresh`). `None` for rows written before schema
    /// version 2. The store keeps the text as given; the line decides what it means.
    pub call_id_mode: Option<String>,
    /// When this state was written.
    pub updated_at: UnixMillis,
}

/// Counters that show how the store is doing (exported in `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions committed by the writer.
    pub commits: u64,
    /// Write operations carried by those commits (`writes / commits` is the mean batch).
    pub writes: u64,
    /// The largest number of write operations committed together.
    pub largest_batch: u64,
    /// Transactions that failed to begin or commit.
    pub failed_commits: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn binding(contact: &str, instance: Option<&str>, reg_id: Option<u32>) -> BindingRecord {
        BindingRecord {
            user: "101".into(),
            contact: contact.into(),
            instance: instance.map(Into::into),
            reg_id,
            q_milli: None,
            expires_at: 0,
            call_id: "c".into(),
            cseq: 1,
            transport: "UDP".into(),
            source: "127.0.0.1:5062".into(),
            user_agent: None,
            registered_at: 0,
        }
    }

    #[test]
    fn key_uses_instance_when_present() {
        let b = binding("sip:101@10.0.0.1", Some("<urn:uuid:1>"), Some(1));
        assert_eq!(b.key().to_column(), "i:1:<urn:uuid:1>");
        let b = binding("sip:101@10.0.0.1", Some("<urn:uuid:1>"), None);
        assert_eq!(b.key().to_column(), "i:-:<urn:uuid:1>");
    }

    #[test]
    fn key_falls_back_to_contact() {
        let b = binding("sip:101@10.0.0.1:5062", None, Some(1));
        assert_eq!(b.key(), BindingKey::Contact("sip:101@10.0.0.1:5062".into()));
        assert_eq!(b.key().to_column(), "c:sip:101@10.0.0.1:5062");
    }

    #[test]
    fn contact_cannot_collide_with_instance() {
        let tricky = BindingKey::Contact("i:1:<urn:uuid:1>".into());
        let inst = BindingKey::Instance {
            instance: "<urn:uuid:1>".into(),
            reg_id: Some(1),
        };
        assert_ne!(tricky.to_column(), inst.to_column());
    }
}
