//! Why a rule turned a request down: either the input is invalid (a 422
//! naming each field) or the thing asked for is not possible in its
//! current state (a 409 with a stable code a client can branch on).

use crate::ValidationErrors;

/// A request the current state does not allow. Each has one stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the event can no longer be changed this way")]
    EventNotEditable,
    #[error("the event has reached max_attendees")]
    EventFull,
    #[error("this event is not on sale now")]
    EventNotLive,
    #[error("the auction can no longer be changed")]
    AuctionNotEditable,
    #[error("the auction is not taking bids now")]
    AuctionNotLive,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::EventNotEditable => "event_not_editable",
            Refusal::EventFull => "event_full",
            Refusal::EventNotLive => "event_not_live",
            Refusal::AuctionNotEditable => "auction_not_editable",
            Refusal::AuctionNotLive => "auction_not_live",
        }
    }
}

/// What a rule answers instead of going ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    Invalid(ValidationErrors),
    #[error(transparent)]
    Refused(Refusal),
}

impl Rejection {
    pub fn invalid(field: &str, message: impl Into<String>) -> Rejection {
        Rejection::Invalid(ValidationErrors::single(field, message))
    }
}

impl From<ValidationErrors> for Rejection {
    fn from(errors: ValidationErrors) -> Self {
        Rejection::Invalid(errors)
    }
}

impl From<Refusal> for Rejection {
    fn from(refusal: Refusal) -> Self {
        Rejection::Refused(refusal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_words() {
        for refusal in [
            Refusal::EventNotEditable,
            Refusal::EventFull,
            Refusal::EventNotLive,
            Refusal::AuctionNotEditable,
            Refusal::AuctionNotLive,
        ] {
            let code = refusal.code();
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{code}");
            assert!(!refusal.to_string().is_empty());
        }
    }
}
