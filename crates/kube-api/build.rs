//! Compiles the vendored Kubernetes `generated.proto` files (`proto/`, see `proto/PROVENANCE.md`)
//! into one encoded `FileDescriptorSet` in `OUT_DIR`, with the pure-Rust `protox` (no `protoc`).
//! `src/protobuf/schema.rs` embeds it and builds its descriptor pool on first use.

use std::path::{Path, PathBuf};

fn proto_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            proto_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    proto_files(&root, &mut files)?;
    // A stable order, so the output only changes with the protos.
    files.sort();
    let relative: Vec<PathBuf> = files
        .iter()
        .map(|f| f.strip_prefix(&root).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;
    let descriptors = protox::Compiler::new([&root])?
        .include_imports(true)
        .include_source_info(false)
        .open_files(&relative)?
        .encode_file_descriptor_set();
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("kubernetes.fds.bin");
    std::fs::write(out, descriptors)?;
    Ok(())
}
