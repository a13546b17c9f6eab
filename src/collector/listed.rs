//! What one collector found that another's series read, typed: the trunks `trunks` listed, from
//! which the call series write a 0 per idle trunk. Its own module so the registry, which hands it
//! over ([`super::registry::Collected::listed_trunks`]), and the collectors depend on it, not on
//! each other.

/// One trunk, as the metrics show it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkState {
    /// Its name.
    pub name: String,
    /// SIP, IAX, FXO, GSM, BRI, E1 (upper-cased).
    pub kind: String,
    /// The PBX's status word, lower-cased with spaces as `_` (`registered`, `no_sim`).
    pub status: String,
    /// Whether it can carry calls.
    pub up: bool,
}
