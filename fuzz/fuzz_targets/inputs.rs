//! Ids, names, type patterns, retry schedules, durations and target URLs: never a panic, and
//! what is accepted is stable (a stored URL or schedule, read back, is accepted as itself).
#![no_main]

use herald_core::config::{parse_duration, RetrySchedule};
use herald_core::id::{CallId, DeliveryId, EndpointId, EventId, TenantId};
use herald_core::targets::AllowList;
use herald_core::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = (EventId::parse(text), TenantId::parse(text), CallId::parse(text));
    let _ = (EndpointId::parse(text), DeliveryId::parse(text));
    let _ = validate::event_type(text);
    let patterns: Vec<String> = text.split(',').map(str::to_string).collect();
    let _ = validate::event_type_patterns(&patterns);
    let _ = parse_duration(text);
    if let Ok(s) = text.parse::<RetrySchedule>() {
        let again = RetrySchedule::from_stored(&s.stored());
        assert_eq!(again, s, "a stored schedule reads back as itself");
        assert_eq!(RetrySchedule::parse(&s.written()).unwrap(), s, "a written schedule parses as itself");
    }
    for allow in [AllowList::none(), AllowList::all()] {
        if let Ok(url) = validate::target_url("url", text, &allow) {
            let stored = validate::target_url("url", url.as_str(), &allow).expect("a stored URL is accepted again");
            assert_eq!(stored.as_str(), url.as_str(), "a stored URL is stored as itself");
        }
    }
    let _ = validate::traceparent(text);
    let _ = AllowList::none().permits(std::net::IpAddr::from([127, 0, 0, 1]));
    let _ = text.parse::<AllowList>();
});
