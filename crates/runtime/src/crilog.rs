//! CRI-format container log files (being written).
