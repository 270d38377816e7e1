//! Vendor credentials: how they arrive, how passwords are stored and checked.
use std::{fmt, sync::OnceLock};

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use lambda_http::http::HeaderMap;
use rand::{rngs::OsRng as RandOsRng, RngCore};

use crate::domain::FieldError;

/// A username and password as a vendor sent them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Reads eComNow credentials: the `Username` and `Password` headers, as the document says,
/// or else `Authorization: Basic base64(user:pass)`.
pub fn credentials_from_headers(headers: &HeaderMap) -> Option<Credentials> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let (Some(username), Some(password)) = (text("username"), text("password")) {
        return Some(Credentials { username: username.to_owned(), password: password.to_owned() });
    }
    let auth = text("authorization")?;
    let (scheme, encoded) = auth.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some(Credentials { username: username.to_owned(), password: password.to_owned() })
}

/// Usernames are matched without regard to case: `Acme` and `acme` are one vendor.
pub fn normalize_username(raw: &str) -> Result<String, FieldError> {
    let u = raw.trim().to_ascii_lowercase();
    let ok_len = (1..=128).contains(&u.len());
    let ok_chars =
        u.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+'));
    if ok_len && ok_chars {
        Ok(u)
    } else {
        Err(FieldError::malformed(
            "username",
            "username must be 1-128 characters of letters, digits and . _ - @ +",
        ))
    }
}

/// The password rule for new vendor accounts.
pub fn validate_new_password(password: &str) -> Result<(), FieldError> {
    let n = password.chars().count();
    if !(12..=256).contains(&n) {
        return Err(FieldError::malformed("password", "password must be 12-256 characters"));
    }
    if password.chars().any(char::is_control) {
        return Err(FieldError::malformed("password", "password must not contain control characters"));
    }
    Ok(())
}

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes), as a PHC string.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Checks a password against a stored PHC hash; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Spends the time a real check would, so an unknown username cannot be told from a wrong
/// password by the response time.
pub fn verify_against_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default());
    let _ = verify_password(password, phc);
}

/// Checks a sign-in's password against its account's hash, or, with no account, against a dummy
/// at the same cost: whether the account exists never shows in the time taken.
pub fn verify_login(password: &str, hash: Option<&str>) -> bool {
    match hash {
        Some(phc) => verify_password(password, phc),
        None => {
            verify_against_dummy(password);
            false
        }
    }
}

/// The prefix of API tokens, so secret scanners and people can tell what they are.
pub const TOKEN_PREFIX: &str = "vwt_";

/// A new bearer token: 256 random bits, base64url, behind [`TOKEN_PREFIX`].
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    RandOsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored of a token: its SHA-256, in hex. The token itself is never stored.
pub fn token_hash(token: &str) -> String {
    crate::digest::sha256_hex(token)
}

/// Reads `Authorization: Bearer <token>`; `None` if absent or not a well-formed token.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    let well_formed = (16..=256).contains(&token.len())
        && token.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
        });
    (scheme.eq_ignore_ascii_case("bearer") && well_formed).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn username_and_password_headers_are_read() {
        let c = credentials_from_headers(&headers(&[("Username", "acme"), ("Password", "pw:x")])).unwrap();
        assert_eq!(c, Credentials { username: "acme".into(), password: "pw:x".into() });
    }

    #[test]
    fn basic_authorization_is_read() {
        let value = format!("Basic {}", STANDARD.encode("acme:p:w"));
        let c = credentials_from_headers(&headers(&[("authorization", &value)])).unwrap();
        assert_eq!(c.username, "acme");
        assert_eq!(c.password, "p:w");
        let lower = format!("basic {}", STANDARD.encode("a:b"));
        assert!(credentials_from_headers(&headers(&[("authorization", &lower)])).is_some());
    }

    #[test]
    fn missing_or_malformed_credentials_are_none() {
        assert!(credentials_from_headers(&headers(&[])).is_none());
        assert!(credentials_from_headers(&headers(&[("username", "acme")])).is_none());
        assert!(credentials_from_headers(&headers(&[("authorization", "Bearer abc")])).is_none());
        assert!(credentials_from_headers(&headers(&[("authorization", "Basic !!!")])).is_none());
        let no_colon = format!("Basic {}", STANDARD.encode("acme"));
        assert!(credentials_from_headers(&headers(&[("authorization", &no_colon)])).is_none());
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn usernames_are_case_folded_and_checked() {
        assert_eq!(normalize_username(" Acme.Shop ").unwrap(), "acme.shop");
        assert!(normalize_username("").is_err());
        assert!(normalize_username("a b").is_err());
        assert!(normalize_username(&"a".repeat(129)).is_err());
    }

    #[test]
    fn tokens_are_256_bit_and_stored_only_as_their_hash() {
        let t = new_token();
        assert!(t.starts_with(TOKEN_PREFIX));
        assert_eq!(URL_SAFE_NO_PAD.decode(&t[TOKEN_PREFIX.len()..]).unwrap().len(), 32);
        assert_ne!(new_token(), t);
        let h = token_hash(&t);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&t[4..]));
        assert_eq!(h, token_hash(&t));
        assert_ne!(h, token_hash("other"));
    }

    #[test]
    fn bearer_tokens_are_read_and_malformed_ones_refused() {
        let t = new_token();
        let value = format!("Bearer {t}");
        assert_eq!(bearer_token(&headers(&[("authorization", &value)])), Some(t.as_str()));
        let lower = format!("bearer  {t} ");
        assert_eq!(bearer_token(&headers(&[("authorization", &lower)])), Some(t.as_str()));
        for bad in
            ["", "Bearer", "Bearer ", "Basic abcdefghijklmnopq", "Bearer short", "Bearer has space inside it"]
        {
            assert_eq!(bearer_token(&headers(&[("authorization", bad)])), None, "{bad:?}");
        }
        assert_eq!(bearer_token(&headers(&[])), None);
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials { username: "u".into(), password: "hunter2hunter2".into() };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
