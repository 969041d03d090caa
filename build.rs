//! Link options for the release `tessera` binary (issue 18: binary size and idle RSS).
//!
//! - Packed relative relocations (DT_RELR, glibc 2.36+, the runtime image's bookworm): a PIE
//!   Rust binary has some 56,000 relative relocations, 1.3 MiB of `.rela.dyn` that the loader
//!   reads whole at every start; packed they are 14 KiB. ASLR stays (still PIE).
//! - Identical code folding, `safe` so that functions whose address is taken stay distinct:
//!   monomorphised generics often compile to the same machine code.
//!
//! Release only, so debug and test builds link as before. Both options are lld's (the default
//! linker of x86_64-unknown-linux-gnu since Rust 1.90); GNU ld knows the first, not the second.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if linux_gnu && release {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
            println!("cargo:rustc-link-arg-bins=-Wl,--icf=safe");
        }
    }
}
