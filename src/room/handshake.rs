//! What the upgrade request says: which room (path normalised like central, §c.1) and
//! which token (§c.2). Runs inside the WebSocket handshake callback; only a path outside
//! the prefix is refused there (HTTP 404), everything else is answered on the socket.

use crate::secret::Secret;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};

/// The room a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `<prefix>/<type>/<id>`, with `devices` normalised to `device`.
    Room {
        /// Room type name.
        kind: String,
        /// Room id within the type (the device UUID for `device`).
        id: String,
    },
    /// Under the prefix but not `<type>/<id>` (central: `UNKNOWN_ERROR`, bare close).
    Malformed,
    /// `/echo` with `[realtime] echo` on: the Autobahn conformance endpoint.
    Echo,
}

/// What the handshake learned.
#[derive(Debug, Default)]
pub struct Upgrade {
    /// The room asked for; `None` until the callback ran.
    pub target: Option<Target>,
    /// The token, from `Authorization: Bearer` or subprotocol `auth.<token>`.
    pub token: Option<Secret>,
    /// A `?token=` query was present (refused like central: treated as no token).
    pub query_token: bool,
}

/// Parses the path against `prefix` (e.g. `/realtime`). `None`: outside the prefix.
pub fn parse_path(path: &str, prefix: &str) -> Option<Target> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let prefix = prefix.trim_end_matches('/');
    let rest = path.strip_prefix(prefix)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let mut segs = rest.split('/').filter(|s| !s.is_empty());
    let (Some(kind), Some(id)) = (segs.next(), segs.next()) else {
        return Some(Target::Malformed);
    };
    // Extra segments are ignored, like central.
    let kind = if kind == "devices" { "device" } else { kind };
    if !super::tokens::valid_room_id(id) || kind.len() > 32 {
        return Some(Target::Malformed);
    }
    Some(Target::Room {
        kind: kind.to_owned(),
        id: id.to_owned(),
    })
}

/// The handshake callback: records the target and token in `out`, echoes the chosen
/// `auth.*` subprotocol, and answers 404 for a path outside the prefix. (The large
/// error type is tungstenite's.)
#[allow(clippy::result_large_err)]
pub fn callback<'a>(
    prefix: &'a str,
    echo: bool,
    out: &'a mut Upgrade,
) -> impl FnOnce(&Request, Response) -> Result<Response, ErrorResponse> + 'a {
    move |req: &Request, mut resp: Response| {
        if echo && req.uri().path() == "/echo" {
            out.target = Some(Target::Echo);
            return Ok(resp);
        }
        let Some(target) = parse_path(req.uri().path(), prefix) else {
            let mut e = ErrorResponse::new(Some("not found\n".to_owned()));
            *e.status_mut() = StatusCode::NOT_FOUND;
            return Err(e);
        };
        out.target = Some(target);
        out.query_token = req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("token=")));
        if let Some(t) = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            out.token = Some(Secret::new(t));
            return Ok(resp);
        }
        let offered = req
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim);
        for p in offered {
            if let Some(t) = p.strip_prefix("auth.").filter(|t| !t.is_empty()) {
                if let Ok(v) = HeaderValue::from_str(p) {
                    resp.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, v);
                }
                out.token = Some(Secret::new(t));
                break;
            }
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_like_central() {
        let room = |k: &str, i: &str| {
            Some(Target::Room {
                kind: k.into(),
                id: i.into(),
            })
        };
        assert_eq!(
            parse_path("/realtime/devices/abc", "/realtime"),
            room("device", "abc")
        );
        assert_eq!(
            parse_path("/realtime/device/abc/x?y=1", "/realtime"),
            room("device", "abc")
        );
        assert_eq!(parse_path("//realtime//devices//abc", "/realtime"), None);
        assert_eq!(
            parse_path("/realtime/other/abc", "/realtime/"),
            room("other", "abc")
        );
        assert_eq!(
            parse_path("/realtime/devices", "/realtime"),
            Some(Target::Malformed)
        );
        assert_eq!(parse_path("/realtimex/devices/a", "/realtime"), None);
        assert_eq!(parse_path("/api/devices/a", "/realtime"), None);
    }
}
