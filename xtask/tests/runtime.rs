//! The runtime layer (issue 3) end to end: the real signed bookworm release and resolver,
//! fixture `.deb`s built here (ar + tar, in Rust) for the safety checks, the cache and the
//! golden diff_id, and the real images run with real tools.
//!
//! Network: only the tests marked "network" reach http://deb.debian.org, and only when the
//! download cache (`cargo xtask lock`/`fetch` fill it) lacks what they need; when the mirror
//! is unreachable they skip, except under CI=true where they fail. Everything else talks
//! to 127.0.0.1 at most.
mod support;

use std::path::{Path, PathBuf};

use support::skip_or_fail;
use xtask::runtime::cache::{Cache, Mode, Wanted};
use xtask::runtime::lock::Lock;
use xtask::runtime::{self, net, trust::Keyring};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn keyring() -> Keyring {
    Keyring::load_dir(&runtime::keys_dir(&workspace())).unwrap()
}

fn lock() -> Lock {
    Lock::load(&runtime::lock_path(&workspace())).unwrap()
}

/// The cache `cargo xtask lock`/`fetch` use, or None (after skipping) when what we need is
/// neither cached nor downloadable.
fn cache_with(wanted: &[Wanted], mirror: &str) -> Option<Cache> {
    let cache = Cache::open_default().unwrap();
    let cached = wanted.iter().all(|w| cache.get(w).unwrap().is_some());
    if !cached {
        if let Err(e) = net::probe(mirror) {
            skip_or_fail(&format!(
                "the Debian mirror is unreachable ({e:#}) and the cache lacks the files"
            ));
            return None;
        }
    }
    cache
        .ensure(&net::Net::new(), mirror, wanted, Mode::Online)
        .unwrap();
    Some(cache)
}

/// network: the real bookworm arm64 index resolves to exactly what apt installs.
#[test]
fn resolver_matches_apt_on_real_bookworm_arm64() {
    let lock = lock();
    let idx = &lock.source.index["arm64"];
    let w = Wanted {
        what: "bookworm main/binary-arm64/Packages.xz".into(),
        url_path: format!(
            "dists/{}/{}/binary-arm64/by-hash/SHA256/{}",
            lock.source.suite, lock.source.component, idx.sha256
        ),
        size: idx.size,
        sha256: idx.sha256.clone(),
    };
    let Some(cache) = cache_with(std::slice::from_ref(&w), &lock.source.mirror) else {
        return;
    };
    let text = runtime::packages_text(&cache.load(&w).unwrap()).unwrap();
    let index = runtime::resolve::Index::parse(&text).unwrap();
    assert!(
        index.len() > 50_000,
        "a full bookworm index, got {}",
        index.len()
    );
    let closure = index
        .resolve(&["bash".to_owned(), "coreutils".to_owned()])
        .unwrap();
    let names: Vec<&str> = closure.iter().map(|p| p.name.as_str()).collect();
    // `apt-get install --no-install-recommends bash coreutils` into an empty arm64 root.
    assert_eq!(
        names,
        [
            "base-files",
            "bash",
            "coreutils",
            "debianutils",
            "gcc-12-base",
            "libacl1",
            "libattr1",
            "libc6",
            "libgcc-s1",
            "libgmp10",
            "libpcre2-8-0",
            "libselinux1",
            "libtinfo6",
            "mawk"
        ]
    );
    // And the lock holds exactly that resolution.
    let locked: Vec<(String, String, String)> = lock
        .packages
        .iter()
        .filter(|p| p.arch == "arm64")
        .map(|p| (p.name.clone(), p.version.clone(), p.sha256.clone()))
        .collect();
    let resolved: Vec<(String, String, String)> = closure
        .iter()
        .map(|p| (p.name.clone(), p.version.to_string(), p.sha256.clone()))
        .collect();
    assert_eq!(locked, resolved);
}

/// network: the real InRelease verifies against the shipped keys (all three signatures), the
/// lock's index digests are the signed ones, and one changed byte breaks it.
#[test]
fn real_inrelease_verifies_and_tampering_is_caught() {
    let lock = lock();
    let cache = Cache::open_default().unwrap();
    let raw = match std::fs::read(cache.path(&lock.source.inrelease_sha256)) {
        Ok(raw) => raw,
        Err(_) => {
            if let Err(e) = net::probe(&lock.source.mirror) {
                skip_or_fail(&format!(
                    "InRelease is not cached (run `cargo xtask lock`) and the mirror is unreachable ({e:#})"
                ));
                return;
            }
            let url = format!(
                "{}/dists/{}/InRelease",
                lock.source.mirror, lock.source.suite
            );
            net::Net::new().get_bytes(&url, 16 << 20).unwrap()
        }
    };
    let text = String::from_utf8(raw.clone()).unwrap();
    let (signed, good) = keyring()
        .verify_inrelease(&text, pgp::types::Timestamp::now())
        .unwrap();
    let mut primaries: Vec<&str> = good.iter().map(|g| g.primary.as_str()).collect();
    primaries.sort();
    assert_eq!(
        primaries,
        [
            "04B54C3CDCA79751B16BC6B5225629DF75B188BD",
            "4D64FEC119C2029067D6E791F8D2585B8783D481",
            "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8"
        ]
    );
    assert!(
        good.iter().any(|g| g.signer != g.primary),
        "subkey signatures verified"
    );
    let release = runtime::release::Release::parse(&signed).unwrap();
    if cache.path(&lock.source.inrelease_sha256).exists() {
        runtime::verify_cached_release(&lock, &cache, &keyring()).unwrap();
        assert_eq!(release.date, lock.source.date);
    }
    // One byte of the signed text changed: every signature is bad, so it is refused.
    let tampered = text.replacen("Origin: Debian", "Origin: Debiam", 1);
    assert_ne!(tampered, text);
    let err = keyring()
        .verify_inrelease(&tampered, pgp::types::Timestamp::now())
        .unwrap_err();
    assert!(format!("{err:#}").contains("not authentic"), "{err:#}");
    // A keyring without Debian's keys trusts nothing.
    let empty = Keyring::parse(&[]).unwrap();
    assert!(empty
        .verify_inrelease(&text, pgp::types::Timestamp::now())
        .is_err());
}
