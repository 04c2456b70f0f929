//! Instant messages (RFC 3428): relay to online users, offline store, delivery on return.
