//! What a caught panic said, for the log line that reports it.

use std::any::Any;

/// The panic's message (`panic!("...")` gives a `&str` or a `String`), or a placeholder.
pub fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}
