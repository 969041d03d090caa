//! Link options for the release `tessera` binary (issue 18: binary size and idle RSS).
//!
//! - Packed relative relocations (DT_RELR, glibc 2.36+, the runtime image's bookworm): a PIE
//!   Rust binary has some 56,000 relative relocations, 1.3 MiB of `.rela.dyn` that the loader
//!   reads whole at every start; packed they are 14 KiB. ASLR stays (still PIE).
//! - Identical code folding, `safe` so that functions whose address is taken stay distinct:
//!   monomorphised generics often compile to the same machine code.
//! - A symbol ordering file, `link/symbol-order.txt`, when present: the functions a start, an
//!   idle server and its first requests run, placed together at the start of `.text`. The
//!   kernel maps a binary's code in 64 KiB blocks around each page fault (fault-around), so
//!   start-up code spread over the text kept two thirds of it resident. Every function has a
//!   section of its own (Rust's and `cc`'s default on ELF), so lld can move each one. Names
//!   the link does not have are skipped without a warning (the file lags the code a little).
//!   `scripts/symbol-order` regenerates it from a trace of the release binary.
//! - `TESSERA_LINK_MAP=<path>`: lld writes a link map there, with mangled names (the symbol
//!   addresses of the stripped binary, for `scripts/symbol-order`). Changing it relinks.
//!
//! Release only, so debug and test builds link as before. All but the first option are lld's
//! (the default linker of x86_64-unknown-linux-gnu since Rust 1.90); GNU ld knows the first.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TESSERA_LINK_MAP");
    let order = std::path::Path::new("link/symbol-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if linux_gnu && release {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
            println!("cargo:rustc-link-arg-bins=-Wl,--icf=safe");
            if order.exists() {
                let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
                let file = std::path::Path::new(&dir).join(order);
                println!(
                    "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
                    file.display()
                );
                println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
            }
            if let Some(map) = std::env::var_os("TESSERA_LINK_MAP").filter(|m| !m.is_empty()) {
                println!(
                    "cargo:rustc-link-arg-bins=-Wl,-Map={}",
                    std::path::Path::new(&map).display()
                );
                // Mangled names in the map, as the ordering file needs them.
                println!("cargo:rustc-link-arg-bins=-Wl,--no-demangle");
            }
        }
    }
}
