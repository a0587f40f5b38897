//! What a verified webhook carries: the event body Herald sends (contract section 1) and the
//! human-in-the-loop operation that the `approval_*` and `human_contact_*` events carry as
//! their `data` (contract section 6).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The event types whose `data` is an [`Operation`].
pub mod event_types {
    pub const APPROVAL_REQUESTED: &str = "approval_requested";
    pub const APPROVAL_COMPLETED: &str = "approval_completed";
    pub const APPROVAL_EXPIRED: &str = "approval_expired";
    pub const HUMAN_CONTACT_REQUESTED: &str = "human_contact_requested";
    pub const HUMAN_CONTACT_COMPLETED: &str = "human_contact_completed";
    pub const HUMAN_CONTACT_EXPIRED: &str = "human_contact_expired";
}

/// A verified webhook: its headers and its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// `webhook-id`: the event id, the same on every attempt, retry and replay. Dedupe on it.
    pub id: String,
    /// `webhook-timestamp`: Unix seconds when this attempt was signed (new on every attempt).
    pub timestamp: i64,
    pub event: Event,
}

/// The body Herald sends: `{"id", "type", "created_at", "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    /// The event's JSON as it was published; `null` is a value.
    pub data: Value,
}

impl Event {
    /// Reads `data` as an [`Operation`], as the `approval_*` and `human_contact_*` events
    /// carry it (see [`event_types`]).
    pub fn operation(&self) -> Result<Operation, serde_json::Error> {
        Operation::deserialize(&self.data)
    }
}

/// A human-in-the-loop operation: an approval of a function call, or a question to a human.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Names the operation: given by the agent (e.g. its tool-call id) or generated (`call_`).
    pub call_id: String,
    #[serde(default)]
    pub run_id: Option<String>,
    pub kind: Kind,
    pub spec: Spec,
    /// The agent's own JSON from the request (e.g. its thread id), untouched; `Null` when the
    /// request had none.
    #[serde(default)]
    pub state: Value,
    pub requested_at: DateTime<Utc>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    pub status: Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Approval,
    HumanContact,
}

/// What was asked: `{fn, kwargs}` for an approval, `{msg, subject}` for a human contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Spec {
    Approval {
        #[serde(rename = "fn")]
        function: String,
        #[serde(default)]
        kwargs: Value,
    },
    HumanContact {
        msg: String,
        #[serde(default)]
        subject: Option<String>,
    },
}

/// Where the operation stands, and the human's answer once there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub state: OpState,
    /// Approvals: the decision.
    #[serde(default)]
    pub approved: Option<bool>,
    /// Approvals: the responder's comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Human contacts: the answer.
    #[serde(default)]
    pub response: Option<String>,
    #[serde(default)]
    pub responder: Option<String>,
    #[serde(default)]
    pub responded_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpState {
    Pending,
    Approved,
    Rejected,
    Answered,
    Expired,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body: &str) -> Event {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn reads_an_approval_completed_operation() {
        let e = event(
            r#"{"created_at":"2026-11-22T10:05:00.000000Z","data":{"call_id":"call_01JD3P0S1T2V3W4X5Y6Z7A8B9C",
            "kind":"approval","requested_at":"2026-11-22T10:00:00.000000Z","expires_at":"2026-11-23T10:00:00.000000Z",
            "run_id":"run_42","spec":{"fn":"send_email","kwargs":{"to":"ana@example.com","subject":"Q3"}},
            "state":{"thread_id":"th_9"},"status":{"state":"approved","approved":true,"comment":"go ahead",
            "response":null,"responder":"ana@example.com","responded_at":"2026-11-22T10:05:00.000000Z"}},
            "id":"evt_01JD3P0S1T2V3W4X5Y6Z7A8B9D","type":"approval_completed"}"#,
        );
        assert_eq!(e.event_type, event_types::APPROVAL_COMPLETED);
        let op = e.operation().unwrap();
        assert_eq!(op.call_id, "call_01JD3P0S1T2V3W4X5Y6Z7A8B9C");
        assert_eq!(op.run_id.as_deref(), Some("run_42"));
        assert_eq!(op.kind, Kind::Approval);
        let Spec::Approval { function, kwargs } = &op.spec else { panic!("{:?}", op.spec) };
        assert_eq!(function, "send_email");
        assert_eq!(kwargs["to"], "ana@example.com");
        assert_eq!(op.state["thread_id"], "th_9");
        assert_eq!(op.expires_at.unwrap().to_rfc3339(), "2026-11-23T10:00:00+00:00");
        assert_eq!(op.status.state, OpState::Approved);
        assert_eq!(op.status.approved, Some(true));
        assert_eq!(op.status.comment.as_deref(), Some("go ahead"));
        assert_eq!(op.status.response, None);
        assert_eq!(op.status.responder.as_deref(), Some("ana@example.com"));
        assert!(op.status.responded_at.is_some());

        // What serialises comes back the same.
        let again: Operation = serde_json::from_value(serde_json::to_value(&op).unwrap()).unwrap();
        assert_eq!(again, op);
    }

    #[test]
    fn reads_a_human_contact_with_fields_null_or_left_out() {
        // As herald.operation_json writes it (nulls in the status stripped), and with every
        // optional field left out.
        let written = event(
            r#"{"created_at":"2026-11-22T11:00:00.000000Z","data":{"call_id":"c2","expires_at":null,
            "kind":"human_contact","requested_at":"2026-11-22T10:59:00.000000Z","run_id":null,
            "spec":{"msg":"Which region?","subject":null},"state":null,
            "status":{"response":"eu-west-1","state":"answered"}},"id":"evt_2","type":"human_contact_completed"}"#,
        );
        let sparse = event(
            r#"{"id":"evt_2","type":"human_contact_completed","created_at":"2026-11-22T11:00:00Z",
            "data":{"call_id":"c2","kind":"human_contact","spec":{"msg":"Which region?"},
            "requested_at":"2026-11-22T10:59:00Z","status":{"state":"answered","response":"eu-west-1"}}}"#,
        );
        assert_eq!(written.operation().unwrap(), sparse.operation().unwrap());
        let op = written.operation().unwrap();
        assert_eq!(op.kind, Kind::HumanContact);
        assert_eq!(op.spec, Spec::HumanContact { msg: "Which region?".into(), subject: None });
        assert_eq!(op.run_id, None);
        assert_eq!(op.state, Value::Null);
        assert_eq!(op.expires_at, None);
        assert_eq!(op.status.state, OpState::Answered);
        assert_eq!(op.status.response.as_deref(), Some("eu-west-1"));
        assert_eq!(op.status.approved, None);
    }

    #[test]
    fn reads_an_expired_pending_and_rejected_state() {
        for (state, want) in
            [("expired", OpState::Expired), ("pending", OpState::Pending), ("rejected", OpState::Rejected)]
        {
            let data = serde_json::json!({"call_id": "c", "kind": "approval", "spec": {"fn": "f", "kwargs": {}},
                "state": null, "requested_at": "2026-11-22T10:00:00Z", "status": {"state": state}});
            let e = Event { id: "e".into(), event_type: "t".into(), created_at: Utc::now(), data };
            assert_eq!(e.operation().unwrap().status.state, want);
        }
    }

    #[test]
    fn data_that_is_not_an_operation_is_an_error() {
        let e = event(r#"{"id":"e","type":"order.paid","created_at":"2026-11-22T10:00:00Z","data":{"order_id":42}}"#);
        assert!(e.operation().is_err());
        assert!(serde_json::from_str::<Event>(r#"{"id":"e","type":"t","created_at":"yesterday","data":1}"#).is_err());
    }
}
