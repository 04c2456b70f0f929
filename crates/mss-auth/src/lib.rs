//! mss-auth (under construction).
