//! mss-store (under construction).
