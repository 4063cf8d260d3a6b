//! The container shim as its own binary, for the runtime's tests (`localfargate shim` is the
//! same code in the main binary).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(localfargate_runtime::process::shim::main(&args));
}
