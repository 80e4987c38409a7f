// Gives libcorral.so a SONAME that carries the ABI version: for 0.x releases every
// minor version may break the ABI, so the SONAME is libcorral.so.0.MINOR; from 1.0 on
// it is libcorral.so.MAJOR.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap();
    let soname = if major == "0" { format!("libcorral.so.0.{minor}") } else { format!("libcorral.so.{major}") };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    println!("cargo:rerun-if-changed=build.rs");
}
