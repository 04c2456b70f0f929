//! mss-txn (under construction).
