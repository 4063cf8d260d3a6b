//! Writes the test image, Debian's static busybox, as an OCI image layout (for
//! `localfargate image load`, skopeo or umoci): `busybox_layout DIR REFERENCE [CMD...]`.
//! Used by scripts/bench-process-pods.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(reference)) = (args.next(), args.next()) else {
        return Err("usage: busybox_layout DIR REFERENCE [CMD...]".into());
    };
    let cmd: Vec<String> = args.collect();
    let cmd: Vec<&str> = if cmd.is_empty() {
        vec!["sh"]
    } else {
        cmd.iter().map(String::as_str).collect()
    };
    let digest = localfargate_runtime::test_images::busybox_layout(
        std::path::Path::new(&dir),
        &reference,
        &cmd,
    )?;
    println!("{digest}");
    Ok(())
}
