//! Reads `exp` from the device token's claims (contract §b.1). The token is
//! `<base64url(claims)>.<base64url(hmac)>`; bbedge cannot verify it and treats it as
//! opaque apart from this one field.

use base64::Engine;

/// The token's `exp` (Unix seconds), if the claims decode.
pub fn expiry(token: &str) -> Option<i64> {
    let claims = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_i64()
}

/// Whether the token has expired at `now_unix` (`None` when `exp` is unreadable).
pub fn expired(token: &str, now_unix: i64) -> Option<bool> {
    expiry(token).map(|exp| exp < now_unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}", e.encode(claims), e.encode("mac"))
    }

    #[test]
    fn exp_is_read_from_the_claims_and_garbage_is_none() {
        let t = token(r#"{"deviceId":"d","type":"device","exp":1781982000,"iat":1}"#);
        let cases: [(&str, Option<i64>); 4] = [
            (&t, Some(1_781_982_000)),
            ("not-a-token", None),
            ("", None),
            ("e30.x", None), // "{}": no exp
        ];
        for (tok, want) in cases {
            assert_eq!(expiry(tok), want, "{tok}");
        }
        assert_eq!(expired(&t, 1_781_982_001), Some(true));
        assert_eq!(expired(&t, 1_781_981_999), Some(false));
    }
}
