//! Pod networking on the host (being written).
