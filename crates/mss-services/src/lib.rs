//! mss-services (under construction).
