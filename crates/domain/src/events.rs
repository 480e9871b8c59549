//! Events: the community fields and their rules, the drop lifecycle, and
//! distances for `near=` searches.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::{check_price, check_url, normalize_tags};
use crate::{Refusal, Rejection, ValidationErrors};

pub const TITLE_MAX: usize = 100;
pub const DESCRIPTION_MAX: usize = 10_000;
pub const LOCATION_MAX: usize = 200;
pub const TAGS_MAX: usize = 20;
pub const TAG_MAX: usize = 30;
pub const ITEMS_MAX: usize = 50;
pub const STOCK_MAX: i64 = 10_000_000;
pub const TTL_MAX_SECONDS: i64 = 24 * 3600;
pub const COMMENT_MAX: usize = 5_000;

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Scheduled,
    Live,
    SoldOut,
    Closed,
    Canceled,
}

impl EventStatus {
    pub const ALL: [EventStatus; 5] = [
        EventStatus::Scheduled,
        EventStatus::Live,
        EventStatus::SoldOut,
        EventStatus::Closed,
        EventStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Scheduled => "scheduled",
            EventStatus::Live => "live",
            EventStatus::SoldOut => "sold_out",
            EventStatus::Closed => "closed",
            EventStatus::Canceled => "canceled",
        }
    }

    pub fn parse(value: &str) -> Option<EventStatus> {
        EventStatus::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Closed and canceled events never change again.
    pub fn is_final(self) -> bool {
        matches!(self, EventStatus::Closed | EventStatus::Canceled)
    }
}

impl TryFrom<String> for EventStatus {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        EventStatus::parse(&value).ok_or_else(|| format!("unknown event status {value:?}"))
    }
}

/// The status an event should have at `now`, from its stored status, its
/// window and whether any stock is left. The scheduler writes this; the
/// purchase path computes it itself, so a late scheduler cannot sell
/// outside the window.
pub fn status_at(
    stored: EventStatus,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    has_items: bool,
    any_stock_left: bool,
    now: DateTime<Utc>,
) -> EventStatus {
    if stored.is_final() {
        return stored;
    }
    if now >= end {
        EventStatus::Closed
    } else if now < start {
        EventStatus::Scheduled
    } else if has_items && !any_stock_left {
        EventStatus::SoldOut
    } else {
        EventStatus::Live
    }
}

/// Whether a purchase may be made at `now`: inside the window and neither
/// closed nor canceled.
pub fn is_on_sale(stored: EventStatus, start: DateTime<Utc>, end: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    !stored.is_final() && start <= now && now < end
}

/// An event: a community event and, when it has items, a drop.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Event {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub location: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    #[cfg_attr(feature = "sqlx", sqlx(json))]
    pub tags: Vec<String>,
    pub max_attendees: Option<i64>,
    pub attendee_count: i64,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub status: EventStatus,
    pub attachment_url: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub reservation_ttl_seconds: Option<i64>,
    pub created_by: Uuid,
    pub created_by_username: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Event {
    pub fn coordinates(&self) -> Option<GeoPoint> {
        match (self.latitude, self.longitude) {
            (Some(latitude), Some(longitude)) => Some(GeoPoint { longitude, latitude }),
            _ => None,
        }
    }

    /// The event's current fields as input, the base of a partial update.
    pub fn input(&self) -> EventInput {
        EventInput {
            title: self.title.clone(),
            description: self.description.clone(),
            location: self.location.clone(),
            start_time: Some(self.start_time),
            end_time: Some(self.end_time),
            tags: self.tags.clone(),
            max_attendees: self.max_attendees,
            coordinates: self.coordinates(),
            attachment_url: self.attachment_url.clone(),
        }
    }

    /// Whether `user` may change or delete it: its creator, or an admin.
    pub fn is_owned_by(&self, user: Uuid) -> bool {
        self.created_by == user
    }
}

/// One item for sale in a drop.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct EventItem {
    pub id: Uuid,
    pub event_id: Uuid,
    pub product_id: Uuid,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock_total: i64,
    pub stock_remaining: i64,
    /// Moves with every change of the stock: orders live stock updates.
    pub stock_version: i64,
    pub per_user_limit: Option<i64>,
}

/// A comment on an event (a reply when it has a parent).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Comment {
    pub id: Uuid,
    pub event_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub user_id: Uuid,
    pub username: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// A GeoJSON point: `[longitude, latitude]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub longitude: f64,
    pub latitude: f64,
}

impl GeoPoint {
    pub fn check(self) -> Result<GeoPoint, String> {
        let ok = (-180.0..=180.0).contains(&self.longitude) && (-90.0..=90.0).contains(&self.latitude);
        if ok && self.longitude.is_finite() && self.latitude.is_finite() {
            Ok(self)
        } else {
            Err("must be [longitude, latitude] with longitude in -180..180 and latitude in -90..90".into())
        }
    }
}

/// Kilometres per degree of latitude.
pub const KM_PER_DEGREE: f64 = 111.32;

/// A `near=` search: a point and a radius. The database compares with the
/// equirectangular approximation (pure arithmetic, the same on SQLite and
/// PostgreSQL), accurate to well under 1% at the radii a city search uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub center: GeoPoint,
    pub radius_km: f64,
}

impl Near {
    /// Parses `lat,lng,km`.
    pub fn parse(value: &str) -> Result<Near, String> {
        let parts: Vec<&str> = value.split(',').map(str::trim).collect();
        let numbers: Option<Vec<f64>> = parts.iter().map(|p| p.parse::<f64>().ok()).collect();
        match numbers.as_deref() {
            Some(&[latitude, longitude, radius_km]) if radius_km > 0.0 && radius_km <= 20_000.0 => {
                let center = GeoPoint { longitude, latitude }.check()?;
                Ok(Near { center, radius_km })
            }
            _ => Err("must be lat,lng,km with a radius above 0 km".into()),
        }
    }

    /// How much a degree of longitude is worth here, relative to latitude.
    pub fn longitude_scale(&self) -> f64 {
        self.center.latitude.to_radians().cos().max(1e-6)
    }

    /// The bounding box `(min_lat, max_lat, min_lng, max_lng)` that holds
    /// the circle, for an index range before the exact check.
    pub fn bounding_box(&self) -> (f64, f64, f64, f64) {
        let dlat = self.radius_km / KM_PER_DEGREE;
        let dlng = dlat / self.longitude_scale();
        (
            self.center.latitude - dlat,
            self.center.latitude + dlat,
            self.center.longitude - dlng,
            self.center.longitude + dlng,
        )
    }

    /// The radius squared, in scaled degrees (compare with
    /// `dlat² + (dlng·scale)²`).
    pub fn radius_degrees_squared(&self) -> f64 {
        let r = self.radius_km / KM_PER_DEGREE;
        r * r
    }

    pub fn contains(&self, point: GeoPoint) -> bool {
        let dlat = point.latitude - self.center.latitude;
        let dlng = (point.longitude - self.center.longitude) * self.longitude_scale();
        dlat * dlat + dlng * dlng <= self.radius_degrees_squared()
    }
}

/// The community fields of an event, as submitted.
#[derive(Debug, Clone, Default)]
pub struct EventInput {
    pub title: String,
    pub description: String,
    pub location: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub max_attendees: Option<i64>,
    pub coordinates: Option<GeoPoint>,
    pub attachment_url: Option<String>,
}

/// A checked, normalized event.
#[derive(Debug, Clone)]
pub struct EventFields {
    pub title: String,
    pub description: String,
    pub location: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub tags: Vec<String>,
    pub max_attendees: Option<i64>,
    pub coordinates: Option<GeoPoint>,
    pub attachment_url: Option<String>,
}

/// Checks an event. `now` is given when the start must not be in the past
/// (at creation, or when an update moves the start).
pub fn validate_event(
    input: EventInput,
    now: Option<DateTime<Utc>>,
) -> Result<EventFields, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let title = input.title.trim().to_owned();
    if title.is_empty() {
        errors.add("title", "must not be blank");
    } else if title.chars().count() > TITLE_MAX {
        errors.add("title", format!("must be 1 to {TITLE_MAX} characters"));
    }
    let description = input.description.trim().to_owned();
    if description.chars().count() > DESCRIPTION_MAX {
        errors.add(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        );
    }
    let location = input.location.trim().to_owned();
    if location.is_empty() {
        errors.add("location", "must not be blank");
    } else if location.chars().count() > LOCATION_MAX {
        errors.add("location", format!("must be at most {LOCATION_MAX} characters"));
    }
    if input.start_time.is_none() {
        errors.add("start_time", "is required");
    }
    if input.end_time.is_none() {
        errors.add("end_time", "is required");
    }
    if let (Some(start), Some(end)) = (input.start_time, input.end_time) {
        if end <= start {
            errors.add("end_time", "must be after start_time");
        }
        if let Some(now) = now
            && start < now - chrono::Duration::seconds(5)
        {
            errors.add("start_time", "must not be in the past");
        }
    }
    let tags = normalize_tags(&input.tags);
    if tags.len() > TAGS_MAX || tags.iter().any(|t| t.is_empty() || t.chars().count() > TAG_MAX) {
        errors.add(
            "tags",
            format!("at most {TAGS_MAX} tags of 1 to {TAG_MAX} characters"),
        );
    }
    if let Some(max) = input.max_attendees
        && max < 1
    {
        errors.add("max_attendees", "must be at least 1");
    }
    let coordinates = match input.coordinates.map(GeoPoint::check) {
        Some(Err(message)) => {
            errors.add("coordinates", message);
            None
        }
        Some(Ok(point)) => Some(point),
        None => None,
    };
    let attachment_url = input
        .attachment_url
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    if let Some(url) = &attachment_url {
        errors.check("attachment_url", check_url(url));
    }
    match (input.start_time, input.end_time) {
        (Some(start_time), Some(end_time)) if errors.is_empty() => Ok(EventFields {
            title,
            description,
            location,
            start_time,
            end_time,
            tags,
            max_attendees: input.max_attendees,
            coordinates,
            attachment_url,
        }),
        _ => Err(errors),
    }
}

/// Checks an edit of an existing event: the fields as for a new event,
/// except that a start time that is not being moved may lie in the past.
pub fn validate_update(
    current: &Event,
    input: EventInput,
    now: DateTime<Utc>,
) -> Result<EventFields, ValidationErrors> {
    let moved = input.start_time.is_some_and(|start| start != current.start_time);
    validate_event(input, moved.then_some(now))
}

/// Whether an event in `current` state may take this edit at `now`: items
/// only while it is scheduled and has not started (once it has, orders may
/// point at them), and never fewer places than people attending.
pub fn check_edit(
    current: &Event,
    fields: &EventFields,
    replaces_items: bool,
    now: DateTime<Utc>,
) -> Result<(), Rejection> {
    let started = current.status != EventStatus::Scheduled || now >= current.start_time;
    if replaces_items && started {
        return Err(Refusal::EventNotEditable.into());
    }
    if let Some(max) = fields.max_attendees
        && max < current.attendee_count
    {
        return Err(Rejection::invalid(
            "max_attendees",
            format!(
                "must be at least the {} people already attending",
                current.attendee_count
            ),
        ));
    }
    Ok(())
}

/// A partial update: only the fields given change. `cancel` cancels the
/// event in the same change.
#[derive(Debug, Clone, Default)]
pub struct EventPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub tags: Option<Vec<String>>,
    pub max_attendees: Option<i64>,
    pub coordinates: Option<GeoPoint>,
    pub attachment_url: Option<String>,
    pub cancel: bool,
}

impl EventPatch {
    /// The event's fields with this patch applied.
    pub fn apply(self, mut input: EventInput) -> EventInput {
        if let Some(v) = self.title {
            input.title = v;
        }
        if let Some(v) = self.description {
            input.description = v;
        }
        if let Some(v) = self.location {
            input.location = v;
        }
        if self.start_time.is_some() {
            input.start_time = self.start_time;
        }
        if self.end_time.is_some() {
            input.end_time = self.end_time;
        }
        if let Some(v) = self.tags {
            input.tags = v;
        }
        if self.max_attendees.is_some() {
            input.max_attendees = self.max_attendees;
        }
        if self.coordinates.is_some() {
            input.coordinates = self.coordinates;
        }
        if self.attachment_url.is_some() {
            input.attachment_url = self.attachment_url;
        }
        input
    }
}

/// One item of a drop, as submitted.
#[derive(Debug, Clone)]
pub struct ItemInput {
    /// An item of the event being edited keeps its id (and so the links
    /// and open pages that name it); without one, the item is new.
    pub id: Option<Uuid>,
    pub product_id: uuid::Uuid,
    pub price_cents: i64,
    pub stock: i64,
    pub per_user_limit: Option<i64>,
}

pub fn validate_items(items: &[ItemInput], ttl_seconds: Option<i64>) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    if items.len() > ITEMS_MAX {
        errors.add("items", format!("at most {ITEMS_MAX} items"));
    }
    for (i, item) in items.iter().enumerate() {
        if let Err(message) = check_price(item.price_cents) {
            errors.add(&format!("items[{i}].price_cents"), message);
        }
        if !(1..=STOCK_MAX).contains(&item.stock) {
            errors.add(
                &format!("items[{i}].stock"),
                format!("must be between 1 and {STOCK_MAX}"),
            );
        }
        if let Some(limit) = item.per_user_limit
            && limit < 1
        {
            errors.add(&format!("items[{i}].per_user_limit"), "must be at least 1");
        }
        if items[..i].iter().any(|other| other.product_id == item.product_id) {
            errors.add(&format!("items[{i}].product_id"), "appears twice");
        }
        if item.id.is_some() && items[..i].iter().any(|other| other.id == item.id) {
            errors.add(&format!("items[{i}].id"), "appears twice");
        }
    }
    if let Some(ttl) = ttl_seconds
        && !(1..=TTL_MAX_SECONDS).contains(&ttl)
    {
        errors.add(
            "reservation_ttl_seconds",
            format!("must be between 1 and {TTL_MAX_SECONDS}"),
        );
    }
    errors.into_result()
}

pub fn check_comment(body: &str) -> Result<(), ValidationErrors> {
    let body = body.trim();
    if body.is_empty() {
        Err(ValidationErrors::single("body", "must not be blank"))
    } else if body.chars().count() > COMMENT_MAX {
        Err(ValidationErrors::single(
            "body",
            format!("must be at most {COMMENT_MAX} characters"),
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, hour, 0, 0).unwrap()
    }

    fn input() -> EventInput {
        EventInput {
            title: " Launch ".into(),
            location: "Berlin".into(),
            start_time: Some(at(10)),
            end_time: Some(at(12)),
            tags: vec!["Music".into()],
            ..EventInput::default()
        }
    }

    #[test]
    fn lifecycle_follows_the_clock() {
        use EventStatus::*;
        assert_eq!(status_at(Scheduled, at(10), at(12), true, true, at(9)), Scheduled);
        assert_eq!(status_at(Scheduled, at(10), at(12), true, true, at(10)), Live);
        assert_eq!(status_at(Live, at(10), at(12), true, false, at(11)), SoldOut);
        assert_eq!(status_at(SoldOut, at(10), at(12), true, true, at(11)), Live);
        assert_eq!(status_at(Live, at(10), at(12), false, false, at(11)), Live);
        assert_eq!(status_at(SoldOut, at(10), at(12), true, false, at(12)), Closed);
        assert_eq!(status_at(Canceled, at(10), at(12), true, true, at(11)), Canceled);
        assert!(is_on_sale(Scheduled, at(10), at(12), at(10)));
        assert!(!is_on_sale(Live, at(10), at(12), at(12)));
        assert!(!is_on_sale(Closed, at(10), at(12), at(11)));
    }

    #[test]
    fn validates_events() {
        let event = validate_event(input(), Some(at(9))).unwrap();
        assert_eq!(event.title, "Launch");
        assert_eq!(event.tags, ["music"]);

        let bad = EventInput {
            title: "   ".into(),
            location: "".into(),
            end_time: Some(at(9)),
            max_attendees: Some(0),
            coordinates: Some(GeoPoint {
                longitude: 200.0,
                latitude: 0.0,
            }),
            ..input()
        };
        let errors = validate_event(bad, Some(at(11))).unwrap_err();
        let fields: Vec<&str> = errors.fields().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "title",
                "location",
                "end_time",
                "start_time",
                "max_attendees",
                "coordinates"
            ]
        );
        let long = EventInput {
            title: "x".repeat(101),
            ..input()
        };
        assert!(validate_event(long, None).is_err());
    }

    fn event(status: EventStatus, attending: i64) -> Event {
        Event {
            id: Uuid::now_v7(),
            title: "Launch".into(),
            description: String::new(),
            location: "Berlin".into(),
            start_time: at(10),
            end_time: at(12),
            tags: vec![],
            max_attendees: Some(10),
            attendee_count: attending,
            status,
            attachment_url: None,
            latitude: Some(52.5),
            longitude: Some(13.4),
            reservation_ttl_seconds: None,
            created_by: Uuid::now_v7(),
            created_by_username: "ann".into(),
            created_at: at(1),
            updated_at: at(1),
        }
    }

    #[test]
    fn edits_follow_the_state() {
        let fields = |max| EventFields {
            max_attendees: max,
            ..validate_event(input(), None).unwrap()
        };
        let scheduled = event(EventStatus::Scheduled, 3);
        assert_eq!(check_edit(&scheduled, &fields(Some(3)), true, at(9)), Ok(()));
        // Still marked scheduled, but its start has come: items are frozen.
        assert_eq!(
            check_edit(&scheduled, &fields(Some(3)), true, at(10)),
            Err(Rejection::Refused(Refusal::EventNotEditable))
        );
        let live = event(EventStatus::Live, 3);
        assert_eq!(check_edit(&live, &fields(None), false, at(11)), Ok(()));
        assert_eq!(
            check_edit(&live, &fields(None), true, at(11)),
            Err(Rejection::Refused(Refusal::EventNotEditable))
        );
        match check_edit(&live, &fields(Some(2)), false, at(11)) {
            Err(Rejection::Invalid(errors)) => assert_eq!(errors.fields()[0].field, "max_attendees"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let current = event(EventStatus::Live, 0);
        let patched = EventPatch {
            title: Some("Renamed".into()),
            end_time: Some(at(13)),
            ..EventPatch::default()
        }
        .apply(current.input());
        assert_eq!(patched.title, "Renamed");
        assert_eq!(patched.end_time, Some(at(13)));
        assert_eq!(patched.location, "Berlin");
        assert_eq!(patched.coordinates, current.coordinates());
        // The start that is not moved may be in the past; a moved one may not.
        assert!(validate_update(&current, patched.clone(), at(11)).is_ok());
        let moved = EventPatch {
            start_time: Some(at(10) + chrono::Duration::minutes(5)),
            ..EventPatch::default()
        }
        .apply(current.input());
        let errors = validate_update(&current, moved, at(11)).unwrap_err();
        assert_eq!(errors.fields()[0].field, "start_time");
    }

    #[test]
    fn near_parses_and_measures() {
        let near = Near::parse("52.52,13.40,10").unwrap();
        // Potsdam is ~27 km from Berlin, Berlin-Mitte 1 km.
        assert!(!near.contains(GeoPoint {
            latitude: 52.39,
            longitude: 13.06
        }));
        assert!(near.contains(GeoPoint {
            latitude: 52.525,
            longitude: 13.41
        }));
        let (min_lat, max_lat, min_lng, max_lng) = near.bounding_box();
        assert!(min_lat < 52.52 && max_lat > 52.52 && min_lng < 13.4 && max_lng > 13.4);
        for bad in ["", "1,2", "a,b,c", "91,0,5", "0,0,0", "0,0,-1"] {
            assert!(Near::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validates_items() {
        let id = uuid::Uuid::now_v7();
        let item = |stock| ItemInput {
            id: None,
            product_id: id,
            price_cents: 100,
            stock,
            per_user_limit: Some(2),
        };
        assert!(validate_items(&[item(5)], Some(600)).is_ok());
        let errors = validate_items(&[item(0), item(5)], Some(0)).unwrap_err();
        let fields: Vec<&str> = errors.fields().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["items[0].stock", "items[1].product_id", "reservation_ttl_seconds"]
        );
    }
}
