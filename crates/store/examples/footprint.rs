//! What a store's memory cache holds: `cargo run --release -p localfargate-store --example
//! footprint -- DATA_DIR/store.db`. Opens the store (it must not be in use), then prints each
//! type of object with its count, text and packed sizes, and the process's memory growth.

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: footprint STORE_DB");
        std::process::exit(2);
    };
    let before = rss_kb();
    let store = match localfargate_store::SqliteStore::open(std::path::Path::new(&path)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("footprint: {e}");
            std::process::exit(1);
        }
    };
    let after = rss_kb();
    let (mut objects, mut stored, mut text) = (0, 0, 0);
    println!(
        "{:<14} {:<34} {:>8} {:>10} {:>10}",
        "kind", "type", "objects", "text B/obj", "kept B/obj"
    );
    for f in store.footprint() {
        println!(
            "{:<14} {:<34} {:>8} {:>10} {:>10}",
            f.kind,
            f.prefix,
            f.objects,
            f.text_bytes / f.objects.max(1),
            f.stored_bytes / f.objects.max(1)
        );
        objects += f.objects;
        stored += f.stored_bytes;
        text += f.text_bytes;
    }
    println!(
        "{objects} objects: {} KB of text kept as {} KB; process memory grew {} KB opening the store",
        text / 1024,
        stored / 1024,
        after.saturating_sub(before)
    );
}
