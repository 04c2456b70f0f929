//! mss-transport (under construction).
