//! Records the target triple so `fluxion-main --version` can say what it was built for.
fn main() {
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    println!("cargo:rustc-env=FLUXION_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
