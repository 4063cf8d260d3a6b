//! `localfargate image load|ls|rm`: the local image store that the process runtime runs pods
//! from, shared by every cluster. `load` takes what `docker save`, `skopeo copy …
//! docker-archive:` or `oci-archive:` write, or an OCI layout directory, as `kind load` does.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use localfargate_runtime::RuntimeConfig;
use localfargate_runtime::image::{ImageStore, RegistryConfig};

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// localfargate's data directory (as `up --data-dir`); images live in its `images/`.
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Load images from `docker save` tarballs, OCI archives or OCI layout directories.
    Load {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// List the images in the store.
    Ls,
    /// Remove images (by reference or digest); their layers go when no image uses them.
    Rm {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
}

fn store(args: &StoreArgs) -> Result<ImageStore> {
    let dir = crate::up::data_dir(args.data_dir.as_ref())?;
    let config = RuntimeConfig::under(&dir);
    ImageStore::open(&config.image_dir, RegistryConfig::default())
        .with_context(|| format!("opening the image store in {}", config.image_dir.display()))
}

pub fn run(cmd: &ImageCmd, args: &StoreArgs) -> Result<i32> {
    let store = store(args)?;
    match cmd {
        ImageCmd::Load { files } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            for f in files {
                let images = rt
                    .block_on(store.load(f))
                    .with_context(|| format!("loading {}", f.display()))?;
                for i in images {
                    println!("Loaded image: {} ({})", i.reference, i.digest);
                }
            }
        }
        ImageCmd::Ls => {
            println!("{:<60} {:<20} {:>12}", "IMAGE", "DIGEST", "SIZE");
            for i in store.list() {
                let short = i.digest.trim_start_matches("sha256:");
                let short = &short[..short.len().min(12)];
                let names = if i.references.is_empty() {
                    vec!["<none>".to_string()]
                } else {
                    i.references.clone()
                };
                for r in names {
                    println!("{r:<60} sha256:{short:<13} {:>12}", i.size);
                }
            }
        }
        ImageCmd::Rm { images } => {
            for i in images {
                store.remove(i).with_context(|| format!("removing {i}"))?;
                println!("Untagged: {i}");
            }
        }
    }
    Ok(0)
}
