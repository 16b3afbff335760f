//! postcard encoding of stored values: compact, schema-less, fast on a Pi.

use super::Error;
use serde::{de::DeserializeOwned, Serialize};

/// Encodes a value for the store.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    postcard::to_stdvec(value).map_err(|e| Error::Encode(e.to_string()))
}

/// Decodes a stored value; bytes that do not fit the type are [`Error::Decode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    postcard::from_bytes(bytes).map_err(|e| Error::Decode(e.to_string()))
}
