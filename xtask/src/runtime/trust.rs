//! The chain of trust: verify a suite's `InRelease` (OpenPGP cleartext signature, RFC 9580
//! section 7) against the Debian archive keys shipped in `xtask/keys/`.
//!
//! rPGP's `verify` is cryptographic only, so the policy is ours (issue 3):
//! - find the signing key by the signature's issuer fingerprint or key id, primary or subkey;
//! - trust is decided on the *primary* key: it must be one of the shipped keys;
//! - only self-signatures are checked (Debian's user IDs also carry certifications by other
//!   archive keys, which `SignedPublicKey::verify_bindings` would try and fail to verify);
//! - the key must be signing-capable (key flags), not revoked, not expired at signing time,
//!   and a subkey needs a valid binding with a valid back-signature;
//! - unknown signers are skipped, any bad signature from a known key rejects the file, and
//!   at least one good signature is required.
use std::path::Path;

use anyhow::{bail, Context};
use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey, SignedPublicSubKey};
use pgp::packet::{Signature, SignatureType};
use pgp::types::{KeyDetails, Tag, Timestamp};

/// The keys we trust, loaded from binary keyrings (Debian's own `.gpg` files, verbatim).
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
}

/// A verified signature: who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoodSignature {
    /// Fingerprint of the trusted primary key (upper-case hex).
    pub primary: String,
    /// Fingerprint of the key that made the signature (a subkey, or the primary itself).
    pub signer: String,
    pub user_id: String,
}

impl Keyring {
    /// Every `*.gpg` (binary) or `*.asc` (armored) keyring file in `dir`.
    pub fn load_dir(dir: &Path) -> anyhow::Result<Keyring> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading the archive keys in {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        let mut keys = Vec::new();
        for f in files {
            let bytes = match f.extension().and_then(|e| e.to_str()) {
                Some("gpg" | "asc") => std::fs::read(&f)?,
                _ => continue,
            };
            let parsed = Keyring::parse(&bytes)
                .with_context(|| format!("reading the OpenPGP keys in {}", f.display()))?;
            keys.extend(parsed.keys);
        }
        if keys.is_empty() {
            bail!("no OpenPGP keys (*.gpg, *.asc) in {}", dir.display());
        }
        Ok(Keyring { keys })
    }

    pub fn parse(bytes: &[u8]) -> anyhow::Result<Keyring> {
        let keys: Vec<SignedPublicKey> = if bytes.starts_with(b"-----BEGIN") {
            SignedPublicKey::from_armor_many(bytes)?
                .0
                .collect::<Result<_, _>>()?
        } else {
            SignedPublicKey::from_bytes_many(bytes)?.collect::<Result<_, _>>()?
        };
        Ok(Keyring { keys })
    }

    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| hex(&k.fingerprint())).collect()
    }

    /// Verify an `InRelease` file; returns its signed text (the Release file) and the good
    /// signatures. `now` is checked against key expiry as well as the signature time.
    pub fn verify_inrelease(
        &self,
        inrelease: &str,
        now: Timestamp,
    ) -> anyhow::Result<(String, Vec<GoodSignature>)> {
        let (msg, _) = CleartextSignedMessage::from_string(inrelease)
            .context("parsing InRelease as an OpenPGP cleartext-signed message")?;
        let text = msg.signed_text();
        let mut good = Vec::new();
        for sig in msg.signatures() {
            let Some((key, signer)) = self.find_signer(sig) else {
                tracing::debug!(issuer = ?sig.issuer_fingerprint(), "skipping a signature by an unknown key");
                continue;
            };
            let primary = hex(&key.fingerprint());
            let who = || {
                format!(
                    "signature by {} (primary key {primary})",
                    hex(&signer_fpr(key, signer))
                )
            };
            match signer {
                None => sig.verify(key, text.as_bytes()),
                Some(sub) => sig.verify(sub, text.as_bytes()),
            }
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("bad {}: the InRelease file is not authentic", who()))?;
            check_key_valid(key, signer, sig, now)
                .with_context(|| format!("refusing the {}", who()))?;
            good.push(GoodSignature {
                primary,
                signer: hex(&signer_fpr(key, signer)),
                user_id: key
                    .details
                    .users
                    .first()
                    .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
                    .unwrap_or_default(),
            });
        }
        if good.is_empty() {
            bail!(
                "InRelease carries no signature by a trusted Debian archive key (trusted: {}); \
                 if Debian rotated its keys, add the new ones to xtask/keys/ from the \
                 debian-archive-keyring package",
                self.fingerprints().join(", ")
            );
        }
        // The text that was signed, with the signature's CRLF normalisation undone.
        Ok((text.replace("\r\n", "\n"), good))
    }

    fn find_signer<'a>(
        &'a self,
        sig: &Signature,
    ) -> Option<(&'a SignedPublicKey, Option<&'a SignedPublicSubKey>)> {
        let fprs = sig.issuer_fingerprint();
        let ids = sig.issuer_key_id();
        let matches = |k: &dyn KeyDetails| {
            fprs.iter().any(|f| **f == k.fingerprint())
                || ids.iter().any(|i| **i == k.legacy_key_id())
        };
        for key in &self.keys {
            if matches(&key.primary_key) {
                return Some((key, None));
            }
            if let Some(sub) = key.public_subkeys.iter().find(|s| matches(&s.key)) {
                return Some((key, Some(sub)));
            }
        }
        None
    }
}

fn signer_fpr(key: &SignedPublicKey, sub: Option<&SignedPublicSubKey>) -> pgp::types::Fingerprint {
    sub.map(|s| s.key.fingerprint())
        .unwrap_or_else(|| key.fingerprint())
}

fn hex(f: &pgp::types::Fingerprint) -> String {
    format!("{f:X}")
}

fn is_self_issued(sig: &Signature, key: &SignedPublicKey) -> bool {
    let fpr = key.fingerprint();
    let id = key.legacy_key_id();
    sig.issuer_fingerprint().iter().any(|f| **f == fpr)
        || sig.issuer_key_id().iter().any(|i| **i == id)
}

/// Key policy (see the module doc): revocation, self-certification, flags, expiry.
fn check_key_valid(
    key: &SignedPublicKey,
    sub: Option<&SignedPublicSubKey>,
    sig: &Signature,
    now: Timestamp,
) -> anyhow::Result<()> {
    let signed_at = sig
        .created()
        .context("the signature has no creation time")?
        .as_secs();
    if let Some(exp) = sig.signature_expiration_time() {
        if exp.as_secs() != 0
            && u64::from(signed_at) + u64::from(exp.as_secs()) < u64::from(now.as_secs())
        {
            bail!("the signature expired");
        }
    }
    for rev in &key.details.revocation_signatures {
        if rev.verify_key(&key.primary_key).is_ok() {
            bail!("the primary key is revoked");
        }
    }
    // The newest valid self-certification of a user ID says what the primary key may do and
    // until when.
    let mut newest: Option<&Signature> = None;
    for user in &key.details.users {
        for cert in user.signatures.iter().filter(|s| is_self_issued(s, key)) {
            if cert.typ() == Some(SignatureType::CertRevocation) {
                continue;
            }
            if cert
                .verify_certification(&key.primary_key, Tag::UserId, &user.id)
                .is_ok()
                && newest.is_none_or(|n| cert.created() > n.created())
            {
                newest = Some(cert);
            }
        }
    }
    let cert = newest.context("the primary key has no valid self-signature on a user ID")?;
    check_expiry(
        "the primary key",
        key.primary_key.created_at(),
        cert.key_expiration_time(),
        signed_at,
        now,
    )?;
    match sub {
        None => {
            if !cert.key_flags().sign() {
                bail!("the primary key is not marked for signing");
            }
        }
        Some(sub) => {
            for s in &sub.signatures {
                if s.typ() == Some(SignatureType::SubkeyRevocation)
                    && s.verify_subkey_binding(&key.primary_key, &sub.key).is_ok()
                {
                    bail!("the subkey is revoked");
                }
            }
            let mut binding: Option<&Signature> = None;
            for s in sub
                .signatures
                .iter()
                .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
            {
                if s.verify_subkey_binding(&key.primary_key, &sub.key).is_ok()
                    && binding.is_none_or(|b| s.created() > b.created())
                {
                    binding = Some(s);
                }
            }
            let binding = binding.context("the subkey has no valid binding signature")?;
            if !binding.key_flags().sign() {
                bail!("the subkey is not marked for signing");
            }
            // A signing subkey must sign its primary back (RFC 9580 5.2.1, type 0x19), or
            // anyone could bind our subkey to their own primary.
            let back = binding
                .embedded_signature()
                .context("the signing subkey has no primary-key binding (back-signature)")?;
            back.verify_primary_key_binding(&sub.key, &key.primary_key)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("the signing subkey's back-signature does not verify")?;
            check_expiry(
                "the subkey",
                sub.key.created_at(),
                binding.key_expiration_time(),
                signed_at,
                now,
            )?;
        }
    }
    Ok(())
}

fn check_expiry(
    what: &str,
    created: Timestamp,
    validity: Option<pgp::types::Duration>,
    signed_at: u32,
    now: Timestamp,
) -> anyhow::Result<()> {
    if signed_at < created.as_secs() {
        bail!("the signature predates {what}");
    }
    if let Some(v) = validity.filter(|v| v.as_secs() != 0) {
        let expires = u64::from(created.as_secs()) + u64::from(v.as_secs());
        if u64::from(signed_at) > expires || u64::from(now.as_secs()) > expires {
            bail!("{what} expired at unix time {expires}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Keyring {
        Keyring::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("keys")).unwrap()
    }

    #[test]
    fn loads_the_shipped_debian_keys() {
        let mut f = shipped().fingerprints();
        f.sort();
        assert_eq!(
            f,
            [
                // debian-archive-keyring 2023.3+deb12u2: bookworm stable, trixie automatic,
                // bookworm automatic, bookworm security automatic (gpg --list-keys shows the
                // same).
                "04B54C3CDCA79751B16BC6B5225629DF75B188BD",
                "05AB90340C0C5E797F44A8C8254CF3B5AEC0A8F0",
                "4D64FEC119C2029067D6E791F8D2585B8783D481",
                "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8",
            ]
        );
    }

    use pgp::composed::{EncryptionCaps, KeyType, SecretKeyParamsBuilder, SubkeyParamsBuilder};
    use pgp::types::Password;

    /// A throwaway Ed25519 key: primary (signing only if `primary_signs`) + a signing subkey.
    fn key(primary_signs: bool) -> pgp::composed::SignedSecretKey {
        let mut sub = SubkeyParamsBuilder::default();
        sub.key_type(KeyType::Ed25519Legacy)
            .can_sign(true)
            .can_encrypt(EncryptionCaps::None)
            .can_authenticate(false);
        let mut p = SecretKeyParamsBuilder::default();
        p.key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(primary_signs)
            .can_encrypt(EncryptionCaps::None)
            .primary_user_id("Test Archive Key <test@example.invalid>".into())
            .subkeys(vec![sub.build().unwrap()]);
        p.build().unwrap().generate(rand::thread_rng()).unwrap()
    }

    fn keyring_of(k: &pgp::composed::SignedSecretKey) -> Keyring {
        Keyring {
            keys: vec![k.to_public_key()],
        }
    }

    fn sign(text: &str, signer: &impl pgp::types::SigningKey) -> String {
        CleartextSignedMessage::sign(rand::thread_rng(), text, signer, &Password::empty())
            .unwrap()
            .to_armored_string(Default::default())
            .unwrap()
    }

    const RELEASE: &str = "Origin: Test\nCodename: bookworm\nDate: Sat, 08 Nov 2025 09:46:04 UTC\n";

    #[test]
    fn policy_subkey_signature_is_trusted_by_primary() {
        let k = key(false);
        let msg = sign(RELEASE, &k.secret_subkeys[0].key);
        let (text, good) = keyring_of(&k)
            .verify_inrelease(&msg, Timestamp::now())
            .unwrap();
        assert_eq!(text.trim_end(), RELEASE.trim_end());
        assert_eq!(good.len(), 1);
        assert_eq!(good[0].primary, hex(&k.fingerprint()));
        assert_ne!(good[0].signer, good[0].primary, "made by the subkey");
        // Another key's keyring does not trust it.
        let other = key(true);
        let err = keyring_of(&other)
            .verify_inrelease(&msg, Timestamp::now())
            .unwrap_err();
        assert!(
            err.to_string().contains("no signature by a trusted"),
            "{err}"
        );
        // A changed byte is a bad signature, not a skipped one.
        let tampered = msg.replace("Origin: Test", "Origin: Tesx");
        let err = keyring_of(&k)
            .verify_inrelease(&tampered, Timestamp::now())
            .unwrap_err();
        assert!(err.to_string().contains("not authentic"), "{err:#}");
    }

    #[test]
    fn policy_primary_without_sign_flag_is_refused() {
        let k = key(false);
        let msg = sign(RELEASE, &k.primary_key);
        let err = keyring_of(&k)
            .verify_inrelease(&msg, Timestamp::now())
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("not marked for signing"),
            "{err:#}"
        );
        let k = key(true);
        let msg = sign(RELEASE, &k.primary_key);
        assert!(keyring_of(&k)
            .verify_inrelease(&msg, Timestamp::now())
            .is_ok());
    }

    #[test]
    fn policy_expiry() {
        let created = Timestamp::from_secs(1_000);
        let week = Some(pgp::types::Duration::from_secs(7 * 86_400));
        let now = Timestamp::from_secs(2_000);
        assert!(check_expiry("k", created, week, 1_500, now).is_ok());
        assert!(check_expiry("k", created, None, 1_500, Timestamp::from_secs(u32::MAX)).is_ok());
        assert!(
            check_expiry("k", created, week, 500, now).is_err(),
            "predates the key"
        );
        let late = Timestamp::from_secs(1_000 + 8 * 86_400);
        let e = check_expiry("the subkey", created, week, 1_500, late).unwrap_err();
        assert!(e.to_string().contains("the subkey expired"), "{e}");
    }

    #[test]
    fn rejects_unsigned_and_garbage() {
        let k = shipped();
        assert!(k
            .verify_inrelease("Origin: Debian\n", Timestamp::now())
            .is_err());
    }
}
