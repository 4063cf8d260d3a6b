//! Local ephemeral storage a sandbox uses, measured as the kubelet's stats provider measures it
//! for the eviction manager: per container its writable layer (the overlay's upper directory)
//! and its logs, and per `emptyDir` volume on disk its directory (`medium: Memory` volumes are
//! tmpfs: they count as memory, and their `sizeLimit` is the tmpfs's size). Usage is what `du`
//! reports: allocated blocks, each inode once, within one file system.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One sandbox's local storage now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageUsage {
    /// Each container that has run, init containers included.
    pub containers: Vec<ContainerStorage>,
    /// Each `emptyDir` volume on disk.
    pub volumes: Vec<VolumeStorage>,
}

/// A container's writable layer (its current run's) and its logs (every run kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStorage {
    pub name: String,
    pub rootfs_bytes: u64,
    pub logs_bytes: u64,
}

impl ContainerStorage {
    /// What counts against the container's `limits.ephemeral-storage`.
    pub fn used_bytes(&self) -> u64 {
        self.rootfs_bytes.saturating_add(self.logs_bytes)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeStorage {
    pub name: String,
    pub used_bytes: u64,
}

impl StorageUsage {
    /// The pod's ephemeral storage: every container's layer and logs and its volumes.
    pub fn pod_bytes(&self) -> u64 {
        let containers = self.containers.iter().map(ContainerStorage::used_bytes);
        let volumes = self.volumes.iter().map(|v| v.used_bytes);
        containers.chain(volumes).fold(0, u64::saturating_add)
    }

    pub fn container(&self, name: &str) -> Option<&ContainerStorage> {
        self.containers.iter().find(|c| c.name == name)
    }

    pub fn volume(&self, name: &str) -> Option<&VolumeStorage> {
        self.volumes.iter().find(|v| v.name == name)
    }
}

/// Bytes allocated to `path` and everything below it, as `du` counts them; 0 when it does not
/// exist. Blocking: it reads every entry.
pub fn disk_usage(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total: u64 = 0;
    for entry in walkdir::WalkDir::new(path)
        .follow_links(false)
        .same_file_system(true)
        .into_iter()
        .flatten()
    {
        let Ok(md) = entry.metadata() else {
            continue;
        };
        // A file linked twice is stored once.
        if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        total = total.saturating_add(md.blocks().saturating_mul(512));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_allocated_blocks_once_per_inode() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(disk_usage(&dir.path().join("missing")), 0);
        let empty = disk_usage(dir.path());
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/data"), vec![7u8; 256 * 1024]).unwrap();
        std::fs::hard_link(dir.path().join("sub/data"), dir.path().join("again")).unwrap();
        // A sparse file takes no blocks for its hole.
        let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(64 * 1024 * 1024).unwrap();
        let used = disk_usage(dir.path()) - empty;
        assert!(
            (256 * 1024..256 * 1024 + 64 * 1024).contains(&used),
            "256 KiB of data once, plus a directory: {used}"
        );
    }
}
