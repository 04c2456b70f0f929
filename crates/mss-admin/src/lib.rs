//! mss-admin (under construction).
