//! Pure logic: no Kubernetes client, no I/O, a clock passed in. Most unit
//! tests live here.

pub mod alerts;
pub mod conditions;
pub mod egress;
pub mod enrich;
pub mod incident;
pub mod policy;
pub mod promql;
pub mod readiness;
pub mod shards;
pub mod signals;

/// FNV-1a, 64 bits: a hash that is stable across versions and machines,
/// for names and keys that must come out the same after a restart.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
