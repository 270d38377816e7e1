//! Identifiers and secrets, all from the operating system's CSPRNG.
use base64::{engine::general_purpose::STANDARD, Engine as _};
use rand::{distributions::Alphanumeric, rngs::OsRng, Rng, RngCore};

/// Webhook ids are below 2^53 so that every JSON client reads them exactly.
pub const MAX_WEBHOOK_ID: u64 = (1 << 53) - 1;

/// A random webhook id in `1..2^53`; uniqueness is enforced by the store's conditional write.
pub fn webhook_id() -> u64 {
    OsRng.gen_range(1..=MAX_WEBHOOK_ID)
}

/// A vendor id such as `ven_4k2j…`: opaque, unguessable, URL-safe.
pub fn vendor_id() -> String {
    let tail: String =
        OsRng.sample_iter(&Alphanumeric).take(20).map(|c| (c as char).to_ascii_lowercase()).collect();
    format!("ven_{tail}")
}

/// An event id for events published without one: `evt_` and 24 random characters.
pub fn event_id() -> String {
    let tail: String = OsRng.sample_iter(&Alphanumeric).take(24).map(char::from).collect();
    format!("evt_{tail}")
}

/// A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64.
pub fn signing_secret() -> String {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_ids_are_positive_and_json_safe() {
        for _ in 0..10_000 {
            let id = webhook_id();
            assert!((1..(1u64 << 53)).contains(&id));
        }
    }

    #[test]
    fn secrets_decode_to_32_bytes() {
        let s = signing_secret();
        let key = STANDARD.decode(s.strip_prefix("whsec_").unwrap()).unwrap();
        assert_eq!(key.len(), 32);
        assert_ne!(signing_secret(), s);
    }

    #[test]
    fn vendor_ids_are_lowercase_alphanumeric() {
        let v = vendor_id();
        assert_eq!(v.len(), 24);
        assert!(v[4..].chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
