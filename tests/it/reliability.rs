//! Reliability under load and faults: kill -9 during writes, a read-only or full disk.
