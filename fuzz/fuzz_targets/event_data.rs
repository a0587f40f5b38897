//! An event's data as sent: never a panic, and what is accepted is JSON that serde_json reads.
#![no_main]

use herald_core::data::EventData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(data) = EventData::parse(text) {
        assert_eq!(data.as_str(), text.trim(), "kept as sent, but for the white space around it");
        let _: serde_json::Value = serde_json::from_str(data.as_str()).expect("accepted data is JSON");
    }
});
