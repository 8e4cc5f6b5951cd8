//! Any bytes as an id index: parsing must not panic, and an index it accepts answers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = vigil_store::ids::IdIndex::from_bytes(data) {
        let _ = index.may_hold("metadata.correlation_uid", "x");
    }
});
