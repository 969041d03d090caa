//! The token endpoint's form parsing: any body either parses into parameters that hold no
//! control character and no repeated name, or is refused; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::grants::Params;

fuzz_target!(|body: &[u8]| {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    if let Ok(params) = Params::parse(pairs.clone()) {
        for (name, value) in &pairs {
            assert!(!name.chars().chain(value.chars()).any(char::is_control));
            if !value.is_empty() {
                assert_eq!(params.get(name), Some(value.as_str()));
            }
        }
    }
});
