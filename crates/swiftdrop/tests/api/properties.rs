//! Property tests of the request-body parser: whatever bytes a client
//! sends, the answer is a 400 (not JSON) or a 422 (JSON, wrong shape),
//! never a panic.

use api::extract::parse_json;
use proptest::prelude::*;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only parsed
struct Sample {
    name: String,
    count: u32,
    tags: Vec<String>,
    nested: Option<Inner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Inner {
    at: chrono::DateTime<chrono::Utc>,
    id: uuid::Uuid,
}

/// Any JSON value, a few levels deep, with keys that sometimes are the
/// sample's own.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("name".to_owned()),
        Just("count".to_owned()),
        Just("tags".to_owned()),
        Just("nested".to_owned()),
        Just("at".to_owned()),
        Just("id".to_owned()),
        "[a-z]{1,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_are_a_400_or_a_422(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(err) = parse_json::<Sample>(&bytes) {
            prop_assert!(
                err.status == StatusCode::BAD_REQUEST || err.status == StatusCode::UNPROCESSABLE_ENTITY,
                "{:?}", err
            );
        }
    }

    #[test]
    fn well_formed_json_is_never_a_400(value in json_value()) {
        let text = value.to_string();
        if let Err(err) = parse_json::<Sample>(text.as_bytes()) {
            prop_assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY, "{}: {:?}", text, err);
            prop_assert!(err.errors.is_some(), "a 422 names the field: {:?}", err);
        }
    }

    #[test]
    fn a_cut_off_object_is_a_400(value in json_value(), cut in any::<prop::sample::Index>()) {
        let text = serde_json::json!({"body": value}).to_string();
        let end = cut.index(text.len());
        let prefix = &text.as_bytes()[..end];
        let err = parse_json::<Sample>(prefix).expect_err("a strict prefix of an object is not JSON");
        prop_assert_eq!(err.status, StatusCode::BAD_REQUEST);
    }
}
