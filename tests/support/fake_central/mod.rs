//! The in-repo fake of the central CivicPress server. This file only declares the
//! registration half (and its test PKI); the device-room half joins it on merge.

pub mod certs;
pub mod register;
