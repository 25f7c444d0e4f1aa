//! Object keys as a bucket lists them: any key under any bucket path is a DMS object or not,
//! never a panic; a key that parses is under its bucket path and names its schema and table.
#![no_main]

use dms_naming::parse_object_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path, key) = text.split_once('\u{0}').unwrap_or(("data", &text));
    if let Some(object) = parse_object_key(path, key) {
        assert_eq!(object.key, key);
        assert!(!object.table.is_empty() && key.contains(&*object.table), "{key} {object:?}");
        assert!(!object.schema.is_empty() && key.contains(&*object.schema), "{key} {object:?}");
    }
});
