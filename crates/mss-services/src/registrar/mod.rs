//! The registrar for local users and the location service (RFC 3261 §10).
