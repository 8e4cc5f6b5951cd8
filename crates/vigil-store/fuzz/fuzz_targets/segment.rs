//! Any bytes as a log segment: reading must not panic, and what it reads ends where it
//! says the good records end.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut end = vigil_store::wal::MAGIC.len() as u64;
    let scan = vigil_store::wal::scan(data, |_, p| end += (vigil_store::wal::RECORD_HEADER + p.len()) as u64);
    assert!(scan.records == 0 || scan.good_end == end);
});
