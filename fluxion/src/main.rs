//! fluxion-main: the FluxION add-on service (skeleton; the service lands with its own issue).
fn main() {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("fluxion-main {} ({})", env!("CARGO_PKG_VERSION"), env!("FLUXION_TARGET"));
    }
}
