//! Realtime error codes shared with the central server, with their WebSocket close
//! codes and HTTP statuses (contract §c.4, §c.6, §d.10).

use serde::Serialize;

/// A realtime error as peers see it. The string codes match central's where central
/// has one; the rest are bbedge's and stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RealtimeCode {
    /// No usable token. Central: error frame, then close 4001 on user paths.
    AuthFailed,
    /// Bad, expired or revoked token, or the wrong room: close 4003.
    PermissionDenied,
    /// The room type is not served here: close 4004.
    RoomTypeNotRegistered,
    /// The room does not exist and may not be created: close 4004.
    RoomNotFound,
    /// A connection cap (total, per IP, per token): close 4029.
    ConnectionLimitExceeded,
    /// `max_rooms` reached: close 4029.
    RoomLimitReached,
    /// Over `messages_per_second`: central's rate-limit error frame, close 1008.
    RateLimited,
    /// A frame that is not a protocol frame (not JSON, binary, unknown or invalid).
    InvalidFrame,
    /// The role may not send this frame (an observer sending a command).
    Forbidden,
    /// A frame over `max_frame_bytes`: close 1009.
    FrameTooLarge,
    /// The client does not read fast enough: close 1013.
    SlowConsumer,
    /// No pong within `idle_timeout`: close 1001.
    IdleTimeout,
    /// The token was revoked while connected: close 4001 (`SESSION_REVOKED`).
    SessionRevoked,
    /// The box is shutting down: close 1001.
    ShuttingDown,
    /// Anything else.
    UnknownError,
}

impl RealtimeCode {
    /// The stable string code.
    pub fn as_str(self) -> &'static str {
        match self {
            RealtimeCode::AuthFailed => "AUTH_FAILED",
            RealtimeCode::PermissionDenied => "PERMISSION_DENIED",
            RealtimeCode::RoomTypeNotRegistered => "ROOM_TYPE_NOT_REGISTERED",
            RealtimeCode::RoomNotFound => "ROOM_NOT_FOUND",
            RealtimeCode::ConnectionLimitExceeded => "CONNECTION_LIMIT_EXCEEDED",
            RealtimeCode::RoomLimitReached => "ROOM_LIMIT_REACHED",
            RealtimeCode::RateLimited => "RATE_LIMITED",
            RealtimeCode::InvalidFrame => "INVALID_FRAME",
            RealtimeCode::Forbidden => "FORBIDDEN",
            RealtimeCode::FrameTooLarge => "FRAME_TOO_LARGE",
            RealtimeCode::SlowConsumer => "SLOW_CONSUMER",
            RealtimeCode::IdleTimeout => "IDLE_TIMEOUT",
            RealtimeCode::SessionRevoked => "SESSION_REVOKED",
            RealtimeCode::ShuttingDown => "SHUTTING_DOWN",
            RealtimeCode::UnknownError => "UNKNOWN_ERROR",
        }
    }

    /// The WebSocket close code that ends the connection, if the error ends it.
    pub fn close_code(self) -> Option<u16> {
        match self {
            RealtimeCode::AuthFailed | RealtimeCode::SessionRevoked => Some(4001),
            RealtimeCode::PermissionDenied => Some(4003),
            RealtimeCode::RoomTypeNotRegistered | RealtimeCode::RoomNotFound => Some(4004),
            RealtimeCode::ConnectionLimitExceeded | RealtimeCode::RoomLimitReached => Some(4029),
            RealtimeCode::RateLimited => Some(1008),
            RealtimeCode::FrameTooLarge => Some(1009),
            RealtimeCode::SlowConsumer => Some(1013),
            RealtimeCode::IdleTimeout | RealtimeCode::ShuttingDown => Some(1001),
            RealtimeCode::InvalidFrame | RealtimeCode::Forbidden | RealtimeCode::UnknownError => {
                None
            }
        }
    }

    /// The HTTP status when the error is given before the upgrade.
    pub fn http_status(self) -> u16 {
        match self {
            RealtimeCode::AuthFailed | RealtimeCode::SessionRevoked => 401,
            RealtimeCode::PermissionDenied | RealtimeCode::Forbidden => 403,
            RealtimeCode::RoomTypeNotRegistered | RealtimeCode::RoomNotFound => 404,
            RealtimeCode::ConnectionLimitExceeded
            | RealtimeCode::RoomLimitReached
            | RealtimeCode::RateLimited => 429,
            RealtimeCode::InvalidFrame => 400,
            RealtimeCode::FrameTooLarge => 413,
            RealtimeCode::SlowConsumer | RealtimeCode::ShuttingDown => 503,
            RealtimeCode::IdleTimeout => 408,
            RealtimeCode::UnknownError => 500,
        }
    }
}

impl std::fmt::Display for RealtimeCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
