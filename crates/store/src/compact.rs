//! The store's memory cache, kept small: every committed object as its JSON text, compressed
//! with zstd against a dictionary made of recent objects of the same type (a pod is packed
//! against other pods, so mostly only its name, uid, timestamps and addresses remain), and
//! decoded when read.
//!
//! A decoded `serde_json::Value` is about seven times its JSON text (a 2 KB pod is 16 KB of maps
//! and strings); packed, the same pod is a few hundred bytes. Reads pay a decompression and a
//! parse, which is what any read that hands out its own copy pays anyway.
//!
//! The cache's keys and packed texts are allocated from the system allocator, not the process's
//! global one: they live long, while the global heap churns through short-lived JSON values, and
//! small long-lived allocations scattered among short-lived ones keep the global allocator's pages
//! from being returned (measured: resident memory about twice what was live).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::ops::Deref;
use std::sync::Arc;

use allocator_api2::alloc::System;

use zstd_safe::{CCtx, CDict, DCtx, DDict};

use crate::{Object, Result, Revision, StoreError};

/// zstd's fastest regular level: with a good dictionary, more effort gains little on small texts.
const LEVEL: i32 = 1;
/// Recent texts a type's dictionary is made of.
const SAMPLES: usize = 4;
/// Texts larger than this are not kept as samples (they would crowd out the typical ones).
const MAX_SAMPLE: usize = 16 * 1024;
/// A type's dictionary is rebuilt from its latest samples after this many writes, then after
/// four times as many, and so on up to `REBUILD_CAP`, then every `REBUILD_CAP` writes: early
/// objects (a cluster's first pods) need not look like the ones that follow.
const REBUILD_CAP: u64 = 16_384;

fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::backend(e)
}

/// A raw-content dictionary, prepared for decompression. Entries packed with it share it; the
/// (larger) compression side is kept only for a type's current dictionary.
pub(crate) struct Dictionary {
    decompress: DDict<'static>,
}

/// Bytes kept in the cache, from the system allocator.
pub(crate) type CacheBytes = allocator_api2::boxed::Box<[u8], System>;
type CacheKey = allocator_api2::boxed::Box<str, System>;

/// An object's text as the cache keeps it (`CacheBytes`), or as copied out of it.
pub(crate) enum Body<B = CacheBytes> {
    Plain(B),
    Packed {
        dictionary: Arc<Dictionary>,
        len: u32,
        bytes: B,
    },
}

impl<B: Deref<Target = [u8]>> Body<B> {
    /// A copy on the global heap, to decode outside the cache's lock.
    fn copied(&self) -> Body<Box<[u8]>> {
        match self {
            Body::Plain(b) => Body::Plain(Box::from(&b[..])),
            Body::Packed {
                dictionary,
                len,
                bytes,
            } => Body::Packed {
                dictionary: dictionary.clone(),
                len: *len,
                bytes: Box::from(&bytes[..]),
            },
        }
    }

    /// Bytes held for the text.
    pub(crate) fn stored_len(&self) -> usize {
        match self {
            Body::Plain(b) => b.len(),
            Body::Packed { bytes, .. } => bytes.len(),
        }
    }

    fn decode(&self) -> Result<serde_json::Value> {
        thread_local! {
            static DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
        }
        match self {
            Body::Plain(text) => serde_json::from_slice(&text[..]).map_err(backend),
            Body::Packed {
                dictionary,
                len,
                bytes,
            } => {
                let mut text = Vec::with_capacity(*len as usize);
                DCTX.with(|cell| {
                    let mut slot = cell.borrow_mut();
                    let dctx = slot.get_or_insert_with(DCtx::create);
                    dctx.decompress_using_ddict(&mut text, &bytes[..], &dictionary.decompress)
                        .map_err(|code| backend(zstd_safe::get_error_name(code)))
                })?;
                serde_json::from_slice(&text).map_err(backend)
            }
        }
    }
}

/// One cached object: everything but its kind and key.
pub(crate) struct Entry<B = CacheBytes> {
    pub revision: Revision,
    pub created: Revision,
    pub body: Body<B>,
    /// The object itself, for kinds kept decoded (few objects read often: the EKS API's).
    pub decoded: Option<Arc<Object>>,
}

impl<B: Deref<Target = [u8]>> Entry<B> {
    /// The object: shared when kept decoded, else decoded now.
    pub fn object(&self, kind: &str, key: &str) -> Result<Arc<Object>> {
        if let Some(o) = &self.decoded {
            return Ok(o.clone());
        }
        Ok(Arc::new(Object {
            kind: kind.to_string(),
            key: key.to_string(),
            value: self.body.decode()?,
            revision: self.revision,
            created: self.created,
        }))
    }
}

/// The samples and current dictionary of one type of object.
#[derive(Default)]
struct TypeDictionary {
    samples: VecDeque<Box<[u8]>>,
    writes: u64,
    rebuild_at: u64,
    current: Option<(CDict<'static>, Arc<Dictionary>)>,
}

/// Packs texts: the compression context and each type's dictionary. Used by the one writer.
pub(crate) struct Packer {
    cctx: CCtx<'static>,
    types: HashMap<String, TypeDictionary>,
}

/// The part of a key that names the object's type for packing: its first two segments
/// (`core/pods/`), so that, within a kind, pods are packed against pods and nodes against nodes.
pub(crate) fn type_prefix(key: &str) -> &str {
    let cut = key.match_indices('/').nth(1).map_or(0, |(i, _)| i + 1);
    &key[..cut]
}

/// Whether keys starting with `prefix` can be of type `ty` (a `type_prefix`): a prefix naming a
/// type, or longer, reaches that type; a shorter one may reach several.
pub(crate) fn type_reached_by(ty: &str, prefix: &str) -> bool {
    ty.starts_with(prefix) || prefix.starts_with(ty)
}

impl Packer {
    pub fn new() -> Self {
        Packer {
            cctx: CCtx::create(),
            types: HashMap::new(),
        }
    }

    /// The text as the cache keeps it: packed when that is smaller.
    pub fn pack(&mut self, kind: &str, key: &str, text: &[u8]) -> Body {
        let prefix = type_prefix(key);
        let mut name = String::with_capacity(kind.len() + 1 + prefix.len());
        name.push_str(kind);
        name.push('\0');
        name.push_str(prefix);
        let ty = self.types.entry(name).or_insert_with(|| TypeDictionary {
            rebuild_at: 1,
            ..Default::default()
        });
        ty.writes += 1;
        if text.len() <= MAX_SAMPLE {
            if ty.samples.len() == SAMPLES {
                ty.samples.pop_front();
            }
            ty.samples.push_back(text.into());
        }
        if ty.writes >= ty.rebuild_at && !ty.samples.is_empty() {
            ty.rebuild_at = if ty.rebuild_at >= REBUILD_CAP {
                ty.rebuild_at + REBUILD_CAP
            } else {
                ty.rebuild_at * 4
            };
            let content: Vec<u8> = ty.samples.iter().flat_map(|s| s.iter().copied()).collect();
            if let (Some(compress), Some(decompress)) = (
                CDict::try_create(&content, LEVEL),
                DDict::try_create(&content),
            ) {
                ty.current = Some((compress, Arc::new(Dictionary { decompress })));
            }
        }
        let plain = || Body::Plain(CacheBytes::from(text));
        let (Some((compress, dictionary)), Ok(len)) =
            (ty.current.as_ref(), u32::try_from(text.len()))
        else {
            return plain();
        };
        let mut out = Vec::with_capacity(zstd_safe::compress_bound(text.len()));
        match self.cctx.compress_using_cdict(&mut out, text, compress) {
            Ok(_) if out.len() < text.len() => Body::Packed {
                dictionary: dictionary.clone(),
                len,
                bytes: CacheBytes::from(&out[..]),
            },
            _ => plain(),
        }
    }
}

/// What the cache holds for one type of object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint {
    pub kind: String,
    /// The first two segments of the keys (`core/pods/`).
    pub prefix: String,
    pub objects: u64,
    /// Bytes the cache keeps for their texts.
    pub stored_bytes: u64,
    /// Bytes of their JSON texts.
    pub text_bytes: u64,
}

/// An object copied out of the cache: its key and entry, on the global heap.
pub(crate) type Copied = (Box<str>, Entry<Box<[u8]>>);

/// One type's objects by key, in memory from the system allocator (see the module's notes).
type TypeMap = hashbrown::HashMap<CacheKey, Entry, std::hash::RandomState, System>;

/// Committed objects by kind, type (`type_prefix`) and key, and the revision they are at.
#[derive(Default)]
pub(crate) struct Cache {
    objects: HashMap<String, HashMap<String, TypeMap>>,
    pub revision: Revision,
}

impl Cache {
    pub fn get(&self, kind: &str, key: &str) -> Option<&Entry> {
        self.objects.get(kind)?.get(type_prefix(key))?.get(key)
    }

    pub fn insert(&mut self, kind: &str, key: &str, entry: Entry) {
        self.objects
            .entry(kind.to_string())
            .or_default()
            .entry(type_prefix(key).to_string())
            .or_insert_with(|| TypeMap::with_hasher_in(std::hash::RandomState::new(), System))
            .insert(CacheKey::from(key), entry);
    }

    /// Keep the objects of kinds starting with one of `prefixes` decoded as well as packed.
    pub fn keep_decoded(&mut self, prefixes: &[String]) -> Result<()> {
        for (kind, types) in self.objects.iter_mut() {
            if !prefixes.iter().any(|p| kind.starts_with(p.as_str())) {
                continue;
            }
            for objects in types.values_mut() {
                for (key, e) in objects.iter_mut() {
                    if e.decoded.is_none() {
                        e.decoded = Some(e.object(kind, key)?);
                    }
                }
            }
        }
        Ok(())
    }

    /// Drop every object of these types (`type_prefix`) of kinds starting with `kinds`.
    pub fn remove_types(&mut self, kinds: &str, type_prefixes: &[String]) {
        for (kind, types) in self.objects.iter_mut() {
            if kind.starts_with(kinds) {
                types.retain(|ty, _| !type_prefixes.contains(ty));
            }
        }
    }

    pub fn remove(&mut self, kind: &str, key: &str) {
        if let Some(objects) = self
            .objects
            .get_mut(kind)
            .and_then(|types| types.get_mut(type_prefix(key)))
        {
            objects.remove(key);
        }
    }

    /// Per type of object (kind and key prefix): how many, their packed bytes, their text bytes.
    pub fn footprint(&self) -> Vec<Footprint> {
        let mut out = Vec::new();
        for (kind, types) in &self.objects {
            for (prefix, objects) in types {
                let mut f = Footprint {
                    kind: kind.clone(),
                    prefix: prefix.clone(),
                    ..Default::default()
                };
                for e in objects.values() {
                    f.objects += 1;
                    f.stored_bytes += e.body.stored_len() as u64;
                    f.text_bytes += match &e.body {
                        Body::Plain(b) => b.len() as u64,
                        Body::Packed { len, .. } => u64::from(*len),
                    };
                }
                out.push(f);
            }
        }
        out.sort_by(|a, b| (&a.kind, &a.prefix).cmp(&(&b.kind, &b.prefix)));
        out
    }

    /// The entries of `kind` whose keys start with `prefix`, in key order, copied out so they
    /// can be decoded without holding the cache.
    pub fn range(&self, kind: &str, prefix: &str) -> Vec<Copied> {
        let Some(types) = self.objects.get(kind) else {
            return Vec::new();
        };
        let mut out: Vec<Copied> = types
            .iter()
            .filter(|(ty, _)| type_reached_by(ty, prefix))
            .flat_map(|(_, objects)| objects.iter())
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| {
                let copy = Entry {
                    revision: e.revision,
                    created: e.created,
                    // A decoded object needs no copy of its text.
                    body: match e.decoded {
                        Some(_) => Body::Plain(Box::default()),
                        None => e.body.copied(),
                    },
                    decoded: e.decoded.clone(),
                };
                (Box::from(&k[..]), copy)
            })
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(i: usize) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{i}"), "namespace": "default",
                         "uid": format!("6f1c1b0e-0000-4000-8000-{i:012}"),
                         "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx",
                     "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}}],
                     "schedulerName": "fargate-scheduler"},
            "status": {"phase": "Pending"}
        }))
        .unwrap()
    }

    #[test]
    fn packed_texts_decode_to_what_was_written() {
        let mut packer = Packer::new();
        for i in 0..50 {
            let text = pod(i);
            let body = packer.pack("k8s/c", &format!("core/pods/default/pod-{i}"), &text);
            let want: serde_json::Value = serde_json::from_slice(&text).unwrap();
            assert_eq!(body.decode().unwrap(), want);
        }
    }

    #[test]
    fn objects_of_a_type_pack_against_each_other() {
        let mut packer = Packer::new();
        let mut last = None;
        for i in 0..20 {
            let text = pod(i);
            last = Some((
                text.len(),
                packer.pack("k8s/c", &format!("core/pods/default/pod-{i}"), &text),
            ));
        }
        let (plain, body) = last.unwrap();
        assert!(matches!(body, Body::Packed { .. }));
        assert!(
            body.stored_len() * 4 < plain,
            "{} bytes packed from {plain}",
            body.stored_len()
        );
    }

    #[test]
    fn the_first_object_of_a_type_is_kept_as_it_is_when_packing_does_not_help() {
        let mut packer = Packer::new();
        let body = packer.pack("eks/cluster", "c", b"{}");
        assert!(matches!(body, Body::Plain(_)));
        assert_eq!(body.decode().unwrap(), json!({}));
    }

    #[test]
    fn types_are_two_key_segments() {
        assert_eq!(type_prefix("core/pods/ns/name"), "core/pods/");
        assert_eq!(type_prefix("apps/deployments/ns/x"), "apps/deployments/");
        assert_eq!(type_prefix("prod"), "");
        assert_eq!(type_prefix("prod/fp"), "");
    }

    #[test]
    fn ranges_are_prefix_bounded_and_ordered() {
        let mut packer = Packer::new();
        let mut cache = Cache::default();
        for key in [
            "core/pods/b/x",
            "core/pods/a/y",
            "core/nodes//n",
            "core/pods/a/x",
            "prod",
            "prod/fp",
        ] {
            let body = packer.pack("k", key, b"{\"a\":1}");
            cache.insert(
                "k",
                key,
                Entry {
                    revision: 1,
                    created: 1,
                    body,
                    decoded: None,
                },
            );
        }
        let keys: Vec<Box<str>> = cache
            .range("k", "core/pods/a/")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            vec!["core/pods/a/x".into(), "core/pods/a/y".into()] as Vec<Box<str>>
        );
        let all: Vec<Box<str>> = cache.range("k", "").into_iter().map(|(k, _)| k).collect();
        assert_eq!(all.len(), 6);
        assert!(all.windows(2).all(|w| w[0] < w[1]), "in key order: {all:?}");
        for (prefix, want) in [
            ("core/", 4),
            ("core/po", 3),
            ("core/pods/a", 2),
            ("prod/", 1),
            ("p", 2),
        ] {
            assert_eq!(cache.range("k", prefix).len(), want, "{prefix}");
        }
        assert!(cache.get("k", "core/nodes//n").is_some());
        cache.remove("k", "core/nodes//n");
        assert!(cache.get("k", "core/nodes//n").is_none());
        assert!(cache.range("other", "").is_empty());
    }
}
