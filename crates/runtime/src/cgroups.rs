//! Pod and container cgroups (being written).
