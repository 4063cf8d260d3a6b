//! The cluster's Fargate profiles as the API server reads them: from the EKS API's records, and
//! indexed for matching, the index rebuilt only when a profile record changed. Fargate's webhook
//! (`admission`) and the controllers read them through here.

use std::sync::Arc;

use localfargate_core::eks::{FARGATE_PROFILE_KIND, Record};
use localfargate_core::{FargateProfile, ProfileIndex};
use localfargate_store::Store;

/// The cluster's Fargate profiles, every status, from the EKS records.
pub fn profiles(store: &dyn Store, cluster: &str) -> Vec<FargateProfile> {
    let Ok((records, _)) = store.list(FARGATE_PROFILE_KIND, &format!("{cluster}/")) else {
        return Vec::new();
    };
    records
        .iter()
        .filter_map(|o| {
            serde_json::from_value::<Record<FargateProfile>>(o.value.clone())
                .map(|r| r.resource)
                .map_err(|e| tracing::warn!(key = %o.key, error = %e, "unreadable profile record"))
                .ok()
        })
        .collect()
}

/// Each profile record's key and revision: when these are unchanged, so is the index.
type ProfileVersions = Vec<(String, u64)>;

/// A profile index, rebuilt only when the profiles changed.
#[derive(Default)]
pub struct IndexCache {
    cached: std::sync::Mutex<Option<(ProfileVersions, Arc<ProfileIndex>)>>,
}

impl IndexCache {
    pub fn get(&self, store: &dyn Store, cluster: &str) -> Arc<ProfileIndex> {
        let versions: ProfileVersions = store
            .list(FARGATE_PROFILE_KIND, &format!("{cluster}/"))
            .map(|(l, _)| l.iter().map(|o| (o.key.clone(), o.revision)).collect())
            .unwrap_or_default();
        let mut guard = self
            .cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((seen, index)) = guard.as_ref()
            && *seen == versions
        {
            return index.clone();
        }
        let index = Arc::new(ProfileIndex::new(profiles(store, cluster)));
        *guard = Some((versions, index.clone()));
        index
    }
}
