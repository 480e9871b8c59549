//! Orders of a flash sale and the rules of a purchase request.

use serde::{Deserialize, Serialize};

use crate::ValidationErrors;

/// Most units one request may reserve.
pub const QUANTITY_MAX: i64 = 100;
pub const IDEMPOTENCY_KEY_MAX: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Reserved,
    Confirmed,
    Canceled,
    Expired,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::Reserved,
        OrderStatus::Confirmed,
        OrderStatus::Canceled,
        OrderStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Reserved => "reserved",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Expired => "expired",
        }
    }

    /// Reserved and confirmed orders hold stock.
    pub fn holds_stock(self) -> bool {
        matches!(self, OrderStatus::Reserved | OrderStatus::Confirmed)
    }
}

impl TryFrom<String> for OrderStatus {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        OrderStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| format!("unknown order status {value:?}"))
    }
}

pub fn check_quantity(quantity: i64) -> Result<(), ValidationErrors> {
    if (1..=QUANTITY_MAX).contains(&quantity) {
        Ok(())
    } else {
        Err(ValidationErrors::single(
            "quantity",
            format!("must be between 1 and {QUANTITY_MAX}"),
        ))
    }
}

/// Keys are opaque to us but must be printable and bounded.
pub fn check_idempotency_key(key: &str) -> Result<(), ValidationErrors> {
    let printable = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX || !printable {
        Err(ValidationErrors::single(
            "Idempotency-Key",
            format!("must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters"),
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_keys() {
        assert!(check_quantity(1).is_ok());
        assert!(check_quantity(0).is_err());
        assert!(check_quantity(101).is_err());
        assert!(check_idempotency_key("order-42").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("has space").is_err());
        assert!(check_idempotency_key(&"k".repeat(201)).is_err());
        assert_eq!(
            OrderStatus::try_from("expired".to_owned()),
            Ok(OrderStatus::Expired)
        );
        assert!(OrderStatus::Confirmed.holds_stock() && !OrderStatus::Canceled.holds_stock());
    }
}
