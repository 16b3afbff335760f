//! What a person types into `bbedge pair` (or the installer puts in the boot file),
//! checked and normalised before anything touches the network (contract §a.1, §a.3, §c.3).
//!
//! Error messages never repeat the enrollment code.

use crate::secret::Secret;
use reqwest::Url;

/// The code alphabet: A–Z without I and O, digits 2–9 (§a.1).
fn in_alphabet(c: char) -> bool {
    matches!(c, 'A'..='H' | 'J'..='N' | 'P'..='Z' | '2'..='9')
}

/// Longest device name accepted (central has no limit; a dashboard does).
pub const MAX_NAME_CHARS: usize = 200;

/// A command-line or boot-file value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The device UUID is not a hyphenated UUID.
    #[error("The device UUID must be the 36-character form the operator received, such as 8c0f4e2a-6b1d-4f3a-9e57-2d4c8b1a0f63.")]
    Uuid,
    /// The code does not have 12 symbols.
    #[error("The enrollment code must have 12 characters, written XXXX-XXXX-XXXX; the one given has {0}.")]
    CodeLength(usize),
    /// The code has characters outside the alphabet or misplaced hyphens.
    #[error("The enrollment code contains characters that codes never use: codes are XXXX-XXXX-XXXX with letters A–Z except I and O, and digits 2–9.")]
    CodeAlphabet,
    /// The server URL is unusable.
    #[error("The server URL must look like https://cp.example.org: {0}.")]
    Server(&'static str),
    /// The realtime URL is unusable.
    #[error("The realtime URL must look like wss://cp.example.org/realtime: {0}.")]
    Realtime(&'static str),
    /// The name is empty, too long or has control characters.
    #[error(
        "The device name must have 1 to {MAX_NAME_CHARS} characters and no control characters."
    )]
    Name,
    /// Cleartext to a host that is not loopback, and `allow_insecure` is off.
    #[error("Refusing to pair over cleartext {scheme}:// with {host}: the code and the token would cross the network unencrypted; use https:// (wss://), or set [upstream] allow_insecure = true on a development network.")]
    Insecure {
        /// `http` or `ws`.
        scheme: String,
        /// The host.
        host: String,
    },
}

/// A device UUID as central issued it: lowercase, hyphenated (§c.1 compares exactly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceUuid(String);

impl DeviceUuid {
    /// Trims and lowercases; refuses anything but the 36-character hyphenated form.
    pub fn parse(s: &str) -> Result<Self, InputError> {
        let s = s.trim().to_ascii_lowercase();
        let u = uuid::Uuid::try_parse(&s).map_err(|_| InputError::Uuid)?;
        let canonical = u.hyphenated().to_string();
        if canonical != s {
            return Err(InputError::Uuid);
        }
        Ok(Self(canonical))
    }

    /// The UUID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An enrollment code in the form central hashed: `XXXX-XXXX-XXXX` (hyphens matter, §a.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentCode(Secret);

impl EnrollmentCode {
    /// Trims, upper-cases, adds hyphens to 12 bare symbols, then checks the alphabet.
    pub fn parse(s: &str) -> Result<Self, InputError> {
        let s = s.trim().to_ascii_uppercase();
        // ASCII only from here on, so the byte slicing below cannot split a character.
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(InputError::CodeAlphabet);
        }
        let symbols = s.chars().filter(|c| *c != '-').count();
        if symbols != 12 {
            return Err(InputError::CodeLength(symbols));
        }
        let hyphenated = if s.len() == 12 && !s.contains('-') {
            format!("{}-{}-{}", &s[0..4], &s[4..8], &s[8..12])
        } else {
            s
        };
        let ok = hyphenated.chars().count() == 14
            && hyphenated.chars().enumerate().all(|(i, c)| {
                if i == 4 || i == 9 {
                    c == '-'
                } else {
                    in_alphabet(c)
                }
            });
        if !ok {
            return Err(InputError::CodeAlphabet);
        }
        Ok(Self(Secret::new(hyphenated)))
    }

    /// The code, for the one request that sends it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// The CivicPress API base URL, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl(Url);

impl ServerUrl {
    /// Accepts `http(s)://host[:port][/prefix]`; cleartext only to loopback unless allowed.
    pub fn parse(s: &str, allow_insecure: bool) -> Result<Self, InputError> {
        let url = Url::parse(s.trim()).map_err(|_| InputError::Server("it is not a URL"))?;
        let secure = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(InputError::Server("use https:// (or http:// on loopback)")),
        };
        check_common(&url).map_err(InputError::Server)?;
        check_cleartext(&url, secure, allow_insecure)?;
        Ok(Self(url))
    }

    /// `https://host[:port][/prefix]` without a trailing slash.
    pub fn base(&self) -> String {
        self.0.as_str().trim_end_matches('/').to_owned()
    }

    /// The registration endpoint (§a.3).
    pub fn devices_endpoint(&self) -> String {
        format!("{}/api/v1/broadcast-box/devices", self.base())
    }

    /// Whether the server is on this box.
    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.0)
    }

    /// The host name, for messages.
    pub fn host(&self) -> String {
        self.0.host_str().unwrap_or("").to_owned()
    }

    /// The realtime base central serves beside the API: `wss://host[:port]/realtime`
    /// from https, `ws://…` from http (§0.2: one origin behind nginx).
    pub fn default_realtime(&self) -> String {
        let scheme = if self.0.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        let host = match self.0.host() {
            Some(url::Host::Ipv6(a)) => format!("[{a}]"),
            Some(h) => h.to_string(),
            None => String::new(),
        };
        match self.0.port() {
            Some(p) => format!("{scheme}://{host}:{p}/realtime"),
            None => format!("{scheme}://{host}/realtime"),
        }
    }
}

/// Checks a `--realtime-url`; returns it without a trailing slash.
pub fn realtime_url(s: &str, allow_insecure: bool) -> Result<String, InputError> {
    let url = Url::parse(s.trim()).map_err(|_| InputError::Realtime("it is not a URL"))?;
    let secure = match url.scheme() {
        "wss" => true,
        "ws" => false,
        _ => return Err(InputError::Realtime("use wss:// (or ws:// on loopback)")),
    };
    check_common(&url).map_err(InputError::Realtime)?;
    check_cleartext(&url, secure, allow_insecure)?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Checks the name sent at registration (required and non-empty, §a.3).
pub fn name(s: &str) -> Result<String, InputError> {
    let s = s.trim();
    let n = s.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || s.chars().any(char::is_control) {
        return Err(InputError::Name);
    }
    Ok(s.to_owned())
}

fn check_common(url: &Url) -> Result<(), &'static str> {
    if url.host_str().unwrap_or("").is_empty() {
        return Err("it has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it must not contain a user name or password");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("it must not have a query (?…) or fragment (#…)");
    }
    Ok(())
}

fn check_cleartext(url: &Url, secure: bool, allow_insecure: bool) -> Result<(), InputError> {
    if secure || allow_insecure || is_loopback(url) {
        return Ok(());
    }
    Err(InputError::Insecure {
        scheme: url.scheme().to_owned(),
        host: url.host_str().unwrap_or("").to_owned(),
    })
}

/// `localhost`, 127.0.0.0/8 or ::1: the traffic never leaves the box.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_normalised_to_the_hyphenated_upper_case_form() {
        for given in ["abcd-efgh-jk23", "  ABCDEFGHJK23 ", "abcdefghjk23"] {
            assert_eq!(
                EnrollmentCode::parse(given).unwrap().expose(),
                "ABCD-EFGH-JK23"
            );
        }
    }

    #[test]
    fn bad_codes_are_refused_without_echoing_them() {
        let cases = [
            ("ABCD-EFGH-JK2", InputError::CodeLength(11)),
            ("ABCD-EFGH-JK234", InputError::CodeLength(13)),
            ("ABCD-EFGH-JKI3", InputError::CodeAlphabet), // I is not in the alphabet
            ("ABCD-EFGH-JK03", InputError::CodeAlphabet), // nor 0
            ("ABCDE-FGH-JK23", InputError::CodeAlphabet), // hyphens misplaced
            ("ABCD-EFGHJK23", InputError::CodeAlphabet),  // one hyphen missing
            ("ABCD EFGH JK23", InputError::CodeAlphabet),
            ("ABCDÉFGHJK23", InputError::CodeAlphabet),
        ];
        for (given, want) in cases {
            let err = EnrollmentCode::parse(given).unwrap_err();
            assert_eq!(err, want, "{given}");
            let text = err.to_string();
            assert!(
                !text.contains(given.trim()) && !text.contains("EFGH"),
                "{text}"
            );
        }
    }

    #[test]
    fn uuids_must_be_hyphenated_and_are_lowercased() {
        let u = "8C0F4E2A-6B1D-4F3A-9E57-2D4C8B1A0F63";
        assert_eq!(
            DeviceUuid::parse(u).unwrap().as_str(),
            u.to_ascii_lowercase()
        );
        for bad in [
            "8c0f4e2a6b1d4f3a9e572d4c8b1a0f63",
            "{8c0f4e2a-6b1d-4f3a-9e57-2d4c8b1a0f63}",
            "urn:uuid:8c0f4e2a-6b1d-4f3a-9e57-2d4c8b1a0f63",
            "not-a-uuid",
            "",
        ] {
            assert_eq!(DeviceUuid::parse(bad), Err(InputError::Uuid), "{bad}");
        }
    }

    #[test]
    fn cleartext_is_refused_off_loopback_unless_allowed() {
        assert!(matches!(
            ServerUrl::parse("http://cp.example.org", false),
            Err(InputError::Insecure { .. })
        ));
        assert!(ServerUrl::parse("http://cp.example.org", true).is_ok());
        for ok in [
            "http://127.0.0.1:3000",
            "http://localhost:3000",
            "http://[::1]:3000",
        ] {
            assert!(ServerUrl::parse(ok, false).is_ok(), "{ok}");
        }
        assert!(matches!(
            realtime_url("ws://10.0.0.5:3001/realtime", false),
            Err(InputError::Insecure { .. })
        ));
        assert!(realtime_url("ws://127.0.0.1:3001/realtime/", false).is_ok());
    }

    #[test]
    fn server_urls_give_the_endpoint_and_the_default_realtime_url() {
        let s = ServerUrl::parse("https://cp.example.org/", false).unwrap();
        assert_eq!(
            s.devices_endpoint(),
            "https://cp.example.org/api/v1/broadcast-box/devices"
        );
        assert_eq!(s.default_realtime(), "wss://cp.example.org/realtime");
        let s = ServerUrl::parse("http://127.0.0.1:3000", false).unwrap();
        assert_eq!(s.default_realtime(), "ws://127.0.0.1:3000/realtime");
        for bad in [
            "ftp://cp.example.org",
            "https://user:pw@cp.example.org",
            "https://cp.example.org/?x=1",
            "cp.example.org",
        ] {
            assert!(
                matches!(ServerUrl::parse(bad, false), Err(InputError::Server(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("  Council chamber ").unwrap(), "Council chamber");
        assert_eq!(name("   "), Err(InputError::Name));
        assert_eq!(name("a\nb"), Err(InputError::Name));
        assert_eq!(name(&"x".repeat(201)), Err(InputError::Name));
    }
}
