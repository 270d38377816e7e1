//! What one function instance remembers of password checks, so that they fit a Lambda's CPU
//! share and cannot be used to burn it:
//!
//! - **Verified credentials**, for a short while: a request whose username, password and stored
//!   hash were verified within [`GuardSettings::verified_for`] skips argon2. The memory holds an
//!   HMAC-SHA256 of the three under a random key of this process, never the password; a changed
//!   password (a new stored hash) matches nothing remembered.
//! - **Failed checks per username**: after [`GuardSettings::failures`] wrong passwords (or
//!   unknown usernames) within [`GuardSettings::window`], the username's checks answer `429`
//!   until the window ends, before any argon2 runs. Credentials verified and remembered still
//!   pass, so a vendor already signed in is not locked out by someone guessing.
//!
//! Each instance keeps its own memory: across N warm instances a username gets at most N times
//! the allowance per window, and a cold instance starts with none remembered.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// How long verified credentials are remembered and how failures are throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardSettings {
    /// `VERIFIED_LOGIN_TTL`, default 60 s (`0s`: nothing is remembered).
    pub verified_for: Duration,
    /// `LOGIN_FAILURES_ALLOWED`: wrong passwords per username and window before `429`, default
    /// 5 (`0`: no throttle).
    pub failures: u32,
    /// `LOGIN_FAILURE_WINDOW`, default 60 s.
    pub window: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self { verified_for: Duration::from_secs(60), failures: 5, window: Duration::from_secs(60) }
    }
}

/// The most entries either memory holds; past it, expired ones go, then the oldest.
const MAX_ENTRIES: usize = 4096;

/// One instance's memory of password checks.
pub struct LoginGuard {
    settings: GuardSettings,
    key: [u8; 32],
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    full_checks: AtomicU64,
}

impl std::fmt::Debug for LoginGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginGuard").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// What to do with a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// These credentials were verified recently: accept them without argon2.
    Remembered,
    /// Check the password.
    Check,
    /// Too many failures for this username: answer `429`, retry after this long.
    Throttled(Duration),
}

impl LoginGuard {
    /// An empty memory with a fresh random key.
    pub fn new(settings: GuardSettings) -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self {
            settings,
            key,
            verified: Mutex::default(),
            failures: Mutex::default(),
            full_checks: AtomicU64::new(0),
        }
    }

    fn digest(&self, username: &str, stored_hash: &str, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in [username, stored_hash, password] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// Decides for a check of `password` for `username`, whose stored hash is `stored_hash`
    /// (`None`: no such username).
    pub fn decide(
        &self,
        username: &str,
        stored_hash: Option<&str>,
        password: &str,
        now: Instant,
    ) -> Decision {
        if let Some(hash) = stored_hash {
            let digest = self.digest(username, hash, password);
            let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if verified.get(&digest).is_some_and(|until| *until > now) {
                return Decision::Remembered;
            }
        }
        if self.settings.failures > 0 {
            let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((count, since)) = failures.get(username) {
                let ends = *since + self.settings.window;
                if *count >= self.settings.failures && ends > now {
                    return Decision::Throttled(ends - now);
                }
            }
        }
        self.full_checks.fetch_add(1, Ordering::Relaxed);
        Decision::Check
    }

    /// Notes a check's result: a success is remembered and clears the username's failures; a
    /// failure counts against the username.
    pub fn record(&self, username: &str, stored_hash: Option<&str>, password: &str, ok: bool, now: Instant) {
        if ok {
            self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(username);
            if let (Some(hash), false) = (stored_hash, self.settings.verified_for.is_zero()) {
                let digest = self.digest(username, hash, password);
                let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                make_room(&mut verified, now, |until| *until);
                verified.insert(digest, now + self.settings.verified_for);
            }
            return;
        }
        if self.settings.failures == 0 {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.settings.window;
        if !failures.contains_key(username) {
            make_room(&mut failures, now, |(_, since)| *since + window);
        }
        let entry = failures.entry(username.to_owned()).or_insert((0, now));
        if entry.1 + window <= now {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// How many checks this instance let argon2 run (for tests and metrics).
    pub fn full_checks(&self) -> u64 {
        self.full_checks.load(Ordering::Relaxed)
    }
}

/// Keeps a memory under [`MAX_ENTRIES`]: drops what has expired, then the entry ending first.
fn make_room<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    now: Instant,
    ends: impl Fn(&V) -> Instant,
) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, v| ends(v) > now);
    if map.len() >= MAX_ENTRIES {
        if let Some(first) = map.iter().min_by_key(|(_, v)| ends(v)).map(|(k, _)| k.clone()) {
            map.remove(&first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

    #[test]
    fn verified_credentials_are_remembered_for_a_while_and_only_as_they_were() {
        let guard = LoginGuard::new(GuardSettings::default());
        let t0 = Instant::now();
        assert_eq!(guard.decide("acme", Some(HASH), "pw-1", t0), Decision::Check);
        guard.record("acme", Some(HASH), "pw-1", true, t0);
        assert_eq!(guard.decide("acme", Some(HASH), "pw-1", t0), Decision::Remembered);
        // Another password, another username, a changed stored hash: checked again.
        assert_eq!(guard.decide("acme", Some(HASH), "pw-2", t0), Decision::Check);
        assert_eq!(guard.decide("other", Some(HASH), "pw-1", t0), Decision::Check);
        assert_eq!(guard.decide("acme", Some("$argon2id$new"), "pw-1", t0), Decision::Check);
        // And after the time it is remembered for.
        assert_eq!(guard.decide("acme", Some(HASH), "pw-1", t0 + Duration::from_secs(61)), Decision::Check);
        assert_eq!(guard.full_checks(), 5);
    }

    #[test]
    fn failures_throttle_the_username_until_the_window_ends() {
        let guard = LoginGuard::new(GuardSettings::default());
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(guard.decide("acme", Some(HASH), "wrong", t0), Decision::Check);
            guard.record("acme", Some(HASH), "wrong", false, t0);
        }
        let checks = guard.full_checks();
        let later = t0 + Duration::from_secs(20);
        assert_eq!(
            guard.decide("acme", Some(HASH), "wrong", later),
            Decision::Throttled(Duration::from_secs(40))
        );
        // The right password too, unless it was verified before: no argon2 either way.
        assert_eq!(
            guard.decide("acme", Some(HASH), "right", later),
            Decision::Throttled(Duration::from_secs(40))
        );
        assert_eq!(guard.full_checks(), checks, "a throttled check costs nothing");
        // Another username, and unknown ones, are counted apart.
        assert_eq!(guard.decide("other", Some(HASH), "wrong", later), Decision::Check);
        for _ in 0..5 {
            guard.record("ghost", None, "x", false, later);
        }
        assert!(matches!(guard.decide("ghost", None, "x", later), Decision::Throttled(_)));
        // The window ends: checked again, and counting starts over.
        let after = t0 + Duration::from_secs(60);
        assert_eq!(guard.decide("acme", Some(HASH), "wrong", after), Decision::Check);
        guard.record("acme", Some(HASH), "wrong", false, after);
        assert_eq!(guard.decide("acme", Some(HASH), "wrong", after), Decision::Check);
    }

    #[test]
    fn remembered_credentials_pass_a_throttle() {
        let guard = LoginGuard::new(GuardSettings::default());
        let t0 = Instant::now();
        guard.record("acme", Some(HASH), "right", true, t0);
        for _ in 0..5 {
            guard.record("acme", Some(HASH), "wrong", false, t0);
        }
        assert!(matches!(guard.decide("acme", Some(HASH), "wrong", t0), Decision::Throttled(_)));
        assert_eq!(guard.decide("acme", Some(HASH), "right", t0), Decision::Remembered);
    }

    #[test]
    fn memory_stays_bounded() {
        let guard = LoginGuard::new(GuardSettings::default());
        let t0 = Instant::now();
        for i in 0..(MAX_ENTRIES + 10) {
            guard.record(&format!("user{i}"), Some(HASH), "pw", true, t0);
            guard.record(&format!("user{i}"), Some(HASH), "wrong", false, t0);
        }
        assert!(guard.verified.lock().unwrap().len() <= MAX_ENTRIES);
        assert!(guard.failures.lock().unwrap().len() <= MAX_ENTRIES);
    }

    #[test]
    fn nothing_remembered_holds_the_password() {
        let guard = LoginGuard::new(GuardSettings::default());
        guard.record("acme", Some(HASH), "hunter2-hunter2", true, Instant::now());
        let verified = guard.verified.lock().unwrap();
        let (digest, _) = verified.iter().next().unwrap();
        assert!(!digest.windows(7).any(|w| w == b"hunter2"));
        assert!(!format!("{guard:?}").contains("hunter2"));
    }
}
