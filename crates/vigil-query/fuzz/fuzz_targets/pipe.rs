//! Any text as a pipe-language query: parsing and rendering its error must not panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = vigil_query::pipe::parse(text).map_err(|e| e.render(text));
});
