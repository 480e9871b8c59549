//! Products, reviews and the rules their input must meet.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ValidationErrors;

/// A product of the catalog.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Product {
    pub id: Uuid,
    pub name: String,
    /// The folded name the name order sorts on ([`name_key`]).
    pub name_key: String,
    pub description: String,
    pub category: String,
    #[cfg_attr(feature = "sqlx", sqlx(json))]
    pub tags: Vec<String>,
    pub price_cents: i64,
    pub currency: String,
    pub image_url: Option<String>,
    pub average_rating: f64,
    pub review_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The key the name order sorts on, computed once when the name is written
/// (the same folding on both databases).
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// One user's review of a product.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Review {
    pub id: Uuid,
    pub product_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub rating: i64,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A product on someone's wishlist, and when they put it there.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct WishlistEntry {
    #[cfg_attr(feature = "sqlx", sqlx(flatten))]
    pub product: Product,
    pub added_at: DateTime<Utc>,
}

pub const NAME_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 10_000;
pub const CATEGORY_MAX: usize = 50;
pub const TAGS_MAX: usize = 20;
pub const TAG_MAX: usize = 30;
pub const URL_MAX: usize = 2048;
pub const COMMENT_MAX: usize = 5_000;
/// A ceiling on prices (10 billion in major units) that keeps every sum of
/// prices well inside an i64.
pub const PRICE_MAX_CENTS: i64 = 1_000_000_000_000;

/// A product as submitted by an admin, before it is normalized.
#[derive(Debug, Clone, Default)]
pub struct ProductInput {
    pub name: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    pub price_cents: i64,
    pub currency: String,
    pub image_url: Option<String>,
}

/// Checks a product and returns it normalized: trimmed text, lower-case
/// de-duplicated tags, upper-case currency, blank image URL as none.
pub fn validate_product(input: ProductInput) -> Result<ProductInput, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let name = input.name.trim().to_owned();
    errors.check("name", required_text(&name, NAME_MAX));
    let description = input.description.trim().to_owned();
    if description.chars().count() > DESCRIPTION_MAX {
        errors.add(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        );
    }
    let category = input.category.trim().to_lowercase();
    errors.check("category", required_text(&category, CATEGORY_MAX));
    let tags = normalize_tags(&input.tags);
    errors.check("tags", check_tags(&tags));
    errors.check("price_cents", check_price(input.price_cents));
    let currency = input.currency.trim().to_uppercase();
    errors.check("currency", check_currency(&currency));
    let image_url = input
        .image_url
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    if let Some(url) = &image_url {
        errors.check("image_url", check_url(url));
    }
    errors.into_result()?;
    Ok(ProductInput {
        name,
        description,
        category,
        tags,
        price_cents: input.price_cents,
        currency,
        image_url,
    })
}

fn required_text(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        Err("must not be blank".into())
    } else if value.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else {
        Ok(())
    }
}

/// Lower-cased, trimmed, de-duplicated, in first-seen order.
pub fn normalize_tags(tags: &[String]) -> Vec<String> {
    let mut seen = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        if !seen.contains(&tag) {
            seen.push(tag);
        }
    }
    seen
}

fn check_tags(tags: &[String]) -> Result<(), String> {
    if tags.len() > TAGS_MAX {
        return Err(format!("at most {TAGS_MAX} tags"));
    }
    if tags.iter().any(|t| t.is_empty() || t.chars().count() > TAG_MAX) {
        return Err(format!("each tag must be 1 to {TAG_MAX} characters"));
    }
    Ok(())
}

pub fn check_price(cents: i64) -> Result<(), String> {
    if (0..=PRICE_MAX_CENTS).contains(&cents) {
        Ok(())
    } else {
        Err(format!("must be between 0 and {PRICE_MAX_CENTS}"))
    }
}

/// An ISO 4217-shaped code: three letters.
pub fn check_currency(code: &str) -> Result<(), String> {
    if code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("must be a three-letter currency code such as EUR".into())
    }
}

/// An absolute http(s) URL or a path on this server (e.g. an upload).
pub fn check_url(url: &str) -> Result<(), String> {
    let well_formed = (url.starts_with("https://") || url.starts_with("http://") || url.starts_with('/'))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if url.len() > URL_MAX {
        Err(format!("must be at most {URL_MAX} characters"))
    } else if !well_formed {
        Err("must be an http(s) URL or a path on this server".into())
    } else {
        Ok(())
    }
}

pub fn validate_review(rating: i64, comment: Option<&str>) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    if !(1..=5).contains(&rating) {
        errors.add("rating", "must be an integer from 1 to 5");
    }
    if let Some(comment) = comment
        && comment.chars().count() > COMMENT_MAX
    {
        errors.add("comment", format!("must be at most {COMMENT_MAX} characters"));
    }
    errors.into_result()
}

/// The mean of `count` ratings summing to `sum`; 0 when unrated, so
/// unrated products sort as rating 0.
pub fn average_rating(sum: i64, count: i64) -> f64 {
    if count == 0 {
        0.0
    } else {
        sum as f64 / count as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ProductInput {
        ProductInput {
            name: " Sneaker ".into(),
            description: "Fast".into(),
            category: "Shoes".into(),
            tags: vec!["Red".into(), "red ".into(), "sale".into()],
            price_cents: 4999,
            currency: "eur".into(),
            image_url: Some("  ".into()),
        }
    }

    #[test]
    fn normalizes_a_valid_product() {
        let product = validate_product(valid()).unwrap();
        assert_eq!(product.name, "Sneaker");
        assert_eq!(product.category, "shoes");
        assert_eq!(product.tags, ["red", "sale"]);
        assert_eq!(product.currency, "EUR");
        assert_eq!(product.image_url, None);
    }

    #[test]
    fn names_every_bad_field() {
        let input = ProductInput {
            name: "  ".into(),
            category: "".into(),
            tags: vec!["".into()],
            price_cents: -1,
            currency: "EURO".into(),
            image_url: Some("javascript:alert(1)".into()),
            ..valid()
        };
        let errors = validate_product(input).unwrap_err();
        let fields: Vec<&str> = errors.fields().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["name", "category", "tags", "price_cents", "currency", "image_url"]
        );
    }

    #[test]
    fn reviews_and_averages() {
        assert!(validate_review(1, None).is_ok());
        assert!(validate_review(5, Some("great")).is_ok());
        assert!(validate_review(0, None).is_err());
        assert!(validate_review(6, None).is_err());
        assert!(validate_review(3, Some(&"x".repeat(5001))).is_err());
        assert_eq!(average_rating(0, 0), 0.0);
        assert_eq!(average_rating(9, 2), 4.5);
    }
}
