//! The JSON shapes of the API (field names fixed by API.md).

use chrono::{DateTime, Utc};
use domain::auctions::Auction;
use domain::catalog::{Product, Review, WishlistEntry};
use domain::events::{Comment, EventItem};
use domain::notify::Notification;
use domain::page::Page;
use domain::sales::{LedgerLine, Order};
use domain::user::User;
use serde::Serialize;
use services::accounts::TokenPair;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub full_name: Option<String>,
    pub display_name: Option<String>,
    #[schema(example = "customer")]
    pub role: &'static str,
    pub is_active: bool,
    pub is_verified: bool,
    pub weight: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            id: user.id,
            email: user.email,
            username: user.username,
            full_name: user.full_name,
            display_name: user.display_name,
            role: user.role.as_str(),
            is_active: user.is_active,
            is_verified: user.is_verified,
            weight: user.weight,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokensView {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    #[schema(example = 1800)]
    pub expires_in: u64,
}

impl From<TokenPair> for TokensView {
    fn from(pair: TokenPair) -> Self {
        TokensView {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: pair.token_type,
            expires_in: pair.expires_in,
        }
    }
}

/// A cursor page of `T`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageView<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

impl<T> PageView<T> {
    pub fn from_page<U>(page: Page<U>, f: impl FnMut(U) -> T) -> Self {
        let page = page.map(f);
        PageView {
            data: page.data,
            next_cursor: page.next_cursor,
            has_more: page.has_more,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    pub price_cents: i64,
    #[schema(example = "EUR")]
    pub currency: String,
    pub image_url: Option<String>,
    /// Mean rating (0 when unrated).
    pub average_rating: f64,
    pub review_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Product> for ProductView {
    fn from(product: Product) -> Self {
        ProductView {
            id: product.id,
            name: product.name,
            description: product.description,
            category: product.category,
            tags: product.tags,
            price_cents: product.price_cents,
            currency: product.currency,
            image_url: product.image_url,
            average_rating: product.average_rating,
            review_count: product.review_count,
            created_at: product.created_at,
            updated_at: product.updated_at,
        }
    }
}

/// A wishlisted product and when it was added.
#[derive(Debug, Serialize, ToSchema)]
pub struct WishlistItemView {
    #[serde(flatten)]
    pub product: ProductView,
    pub added_at: DateTime<Utc>,
}

impl From<WishlistEntry> for WishlistItemView {
    fn from(entry: WishlistEntry) -> Self {
        WishlistItemView {
            product: entry.product.into(),
            added_at: entry.added_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewView {
    pub id: Uuid,
    pub product_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub rating: i64,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Review> for ReviewView {
    fn from(review: Review) -> Self {
        ReviewView {
            id: review.id,
            product_id: review.product_id,
            user_id: review.user_id,
            username: review.username,
            rating: review.rating,
            comment: review.comment,
            created_at: review.created_at,
            updated_at: review.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewSummaryView {
    pub product_id: Uuid,
    pub average_rating: f64,
    pub count: i64,
    /// Reviews per rating: `{"1": n, ..., "5": n}`.
    #[schema(value_type = Object)]
    pub histogram: std::collections::BTreeMap<String, i64>,
}

impl From<services::catalog::RatingSummary> for ReviewSummaryView {
    fn from(summary: services::catalog::RatingSummary) -> Self {
        ReviewSummaryView {
            product_id: summary.product_id,
            average_rating: summary.average_rating,
            count: summary.count,
            histogram: (1..=5)
                .zip(summary.histogram)
                .map(|(rating, n)| (rating.to_string(), n))
                .collect(),
        }
    }
}

/// A GeoJSON point: `{"type": "Point", "coordinates": [lng, lat]}`.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct GeoJsonPoint {
    #[serde(rename = "type")]
    #[schema(example = "Point")]
    pub kind: String,
    /// `[longitude, latitude]`.
    pub coordinates: [f64; 2],
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventItemView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub product_id: Uuid,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock_total: i64,
    /// Live: what is left to buy now.
    pub stock_remaining: i64,
    pub per_user_limit: Option<i64>,
}

impl From<&EventItem> for EventItemView {
    fn from(item: &EventItem) -> Self {
        EventItemView {
            id: item.id,
            event_id: item.event_id,
            product_id: item.product_id,
            name: item.name.clone(),
            price_cents: item.price_cents,
            currency: item.currency.clone(),
            stock_total: item.stock_total,
            stock_remaining: item.stock_remaining,
            per_user_limit: item.per_user_limit,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub location: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub tags: Vec<String>,
    pub max_attendees: Option<i64>,
    pub attendee_count: i64,
    #[schema(example = "live")]
    pub status: &'static str,
    pub attachment_url: Option<String>,
    pub coordinates: Option<GeoJsonPoint>,
    pub reservation_ttl_seconds: Option<i64>,
    pub created_by: Uuid,
    pub created_by_username: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub items: Vec<EventItemView>,
    /// Auctions of this event.
    pub auctions: Vec<AuctionView>,
}

impl From<&services::events::EventDetails> for EventView {
    fn from(details: &services::events::EventDetails) -> Self {
        let event = &details.event;
        EventView {
            id: event.id,
            title: event.title.clone(),
            description: event.description.clone(),
            location: event.location.clone(),
            start_time: event.start_time,
            end_time: event.end_time,
            tags: event.tags.clone(),
            max_attendees: event.max_attendees,
            attendee_count: event.attendee_count,
            status: event.status.as_str(),
            attachment_url: event.attachment_url.clone(),
            coordinates: event.coordinates().map(|point| GeoJsonPoint {
                kind: "Point".into(),
                coordinates: [point.longitude, point.latitude],
            }),
            reservation_ttl_seconds: event.reservation_ttl_seconds,
            created_by: event.created_by,
            created_by_username: event.created_by_username.clone(),
            created_at: event.created_at,
            updated_at: event.updated_at,
            items: details.items.iter().map(EventItemView::from).collect(),
            auctions: details.auctions.iter().cloned().map(AuctionView::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommentView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub user_id: Uuid,
    pub username: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// Replies, each with its own replies, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub replies: Vec<CommentView>,
}

impl From<Comment> for CommentView {
    fn from(comment: Comment) -> Self {
        CommentView {
            id: comment.id,
            event_id: comment.event_id,
            parent_id: comment.parent_id,
            user_id: comment.user_id,
            username: comment.username,
            body: comment.body,
            created_at: comment.created_at,
            replies: Vec::new(),
        }
    }
}

impl From<services::events::Thread> for CommentView {
    fn from(thread: services::events::Thread) -> Self {
        let mut view = CommentView::from(thread.comment);
        view.replies = thread.replies.into_iter().map(CommentView::from).collect();
        view
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The drop's event, or the auction's when it is part of one.
    pub event_id: Option<Uuid>,
    /// The item bought; null for an auction's winning bid.
    pub event_item_id: Option<Uuid>,
    /// The auction won; null for a purchase.
    pub auction_id: Option<Uuid>,
    pub product_id: Uuid,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub currency: String,
    #[schema(example = "reserved")]
    pub status: &'static str,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Order> for OrderView {
    fn from(order: Order) -> Self {
        OrderView {
            id: order.id,
            user_id: order.user_id,
            event_id: order.event_id,
            event_item_id: order.event_item_id,
            auction_id: order.auction_id,
            product_id: order.product_id,
            quantity: order.quantity,
            unit_price_cents: order.unit_price_cents,
            currency: order.currency,
            status: order.status.as_str(),
            expires_at: order.expires_at,
            created_at: order.created_at,
            updated_at: order.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    pub notification_type: String,
    /// The message as it was pushed.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub read: bool,
    pub created_at: DateTime<Utc>,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        NotificationView {
            id: n.id,
            notification_type: n.notification_type,
            payload: n.payload,
            read: n.read,
            created_at: n.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LedgerLineView {
    /// The item (API.md's name for it).
    pub item_id: Uuid,
    /// The same id, under the name earlier releases used.
    pub event_item_id: Uuid,
    pub stock_total: i64,
    pub stock_remaining: i64,
    /// Units held by reserved orders.
    pub reserved: i64,
    /// Units held by confirmed orders.
    pub confirmed: i64,
    /// `stock_remaining + reserved + confirmed == stock_total`.
    pub balanced: bool,
}

impl From<LedgerLine> for LedgerLineView {
    fn from(line: LedgerLine) -> Self {
        LedgerLineView {
            balanced: line.is_balanced(),
            item_id: line.event_item_id,
            event_item_id: line.event_item_id,
            stock_total: line.stock_total,
            stock_remaining: line.stock_remaining,
            reserved: line.reserved,
            confirmed: line.confirmed,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProductSummaryView {
    pub total: i64,
    /// Mean of every review of every listed product; null when none.
    pub average_rating: Option<f64>,
    pub highest_priced: Option<ProductView>,
    /// The five most recently added.
    pub recent: Vec<ProductView>,
}

#[derive(Serialize, ToSchema)]
pub struct UserSummaryView {
    pub total: i64,
    pub active: i64,
    pub admins: i64,
}

#[derive(Serialize, ToSchema)]
pub struct EventCountsView {
    pub scheduled: i64,
    pub live: i64,
    pub sold_out: i64,
    pub closed: i64,
    pub canceled: i64,
}

#[derive(Serialize, ToSchema)]
pub struct OrderCountsView {
    pub reserved: i64,
    pub confirmed: i64,
    pub canceled: i64,
    pub expired: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SellThroughView {
    pub event_id: Uuid,
    pub title: String,
    pub sold: i64,
    pub stock_total: i64,
}

#[derive(Serialize, ToSchema)]
pub struct TopProductView {
    pub product_id: Uuid,
    pub name: String,
    pub units_sold: i64,
    pub revenue_cents: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DashboardView {
    pub products: ProductSummaryView,
    pub events: EventCountsView,
    pub orders: OrderCountsView,
    /// Confirmed orders' value, in cents.
    pub revenue_cents: i64,
    /// Units sold of units offered, per drop (newest 20).
    pub sell_through: Vec<SellThroughView>,
    /// Best sellers by confirmed units (top 5).
    pub top_products: Vec<TopProductView>,
    pub users: UserSummaryView,
}

impl From<services::admin::Dashboard> for DashboardView {
    fn from(dashboard: services::admin::Dashboard) -> Self {
        use domain::events::EventStatus;
        use domain::sales::OrderStatus;
        let sales = dashboard.sales;
        let event = |status| sales.events_by_status.get(&status).copied().unwrap_or(0);
        let order = |status| sales.orders_by_status.get(&status).copied().unwrap_or(0);
        DashboardView {
            events: EventCountsView {
                scheduled: event(EventStatus::Scheduled),
                live: event(EventStatus::Live),
                sold_out: event(EventStatus::SoldOut),
                closed: event(EventStatus::Closed),
                canceled: event(EventStatus::Canceled),
            },
            orders: OrderCountsView {
                reserved: order(OrderStatus::Reserved),
                confirmed: order(OrderStatus::Confirmed),
                canceled: order(OrderStatus::Canceled),
                expired: order(OrderStatus::Expired),
            },
            revenue_cents: sales.revenue_cents,
            sell_through: sales
                .sell_through
                .into_iter()
                .map(|s| SellThroughView {
                    event_id: s.event_id,
                    title: s.title,
                    sold: s.sold,
                    stock_total: s.stock_total,
                })
                .collect(),
            top_products: sales
                .top_products
                .into_iter()
                .map(|t| TopProductView {
                    product_id: t.product_id,
                    name: t.name,
                    units_sold: t.units_sold,
                    revenue_cents: t.revenue_cents,
                })
                .collect(),
            products: ProductSummaryView {
                total: dashboard.products.total,
                average_rating: dashboard.products.average_rating,
                highest_priced: dashboard.products.highest_priced.map(ProductView::from),
                recent: dashboard
                    .products
                    .recent
                    .into_iter()
                    .map(ProductView::from)
                    .collect(),
            },
            users: UserSummaryView {
                total: dashboard.users.total,
                active: dashboard.users.active,
                admins: dashboard.users.admins,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuctionView {
    pub id: Uuid,
    pub product_id: Uuid,
    pub event_id: Option<Uuid>,
    pub upset_price_cents: i64,
    pub currency: String,
    /// How many bidders win.
    pub inventory: i64,
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub start_time: DateTime<Utc>,
    /// Moves out when a bid lands in the last `extend_seconds`.
    pub end_time: DateTime<Utc>,
    pub extend_seconds: Option<i64>,
    #[schema(example = "live")]
    pub status: &'static str,
    /// The lowest winning bid, once settled.
    pub final_price_cents: Option<i64>,
}

impl From<Auction> for AuctionView {
    fn from(a: Auction) -> Self {
        AuctionView {
            id: a.id,
            product_id: a.product_id,
            event_id: a.event_id,
            upset_price_cents: a.upset_price_cents,
            currency: a.currency,
            inventory: a.inventory,
            alpha: a.alpha,
            beta: a.beta,
            gamma: a.gamma,
            start_time: a.start_time,
            end_time: a.end_time,
            extend_seconds: a.extend_seconds,
            status: a.status.as_str(),
            final_price_cents: a.final_price_cents,
        }
    }
}

/// A bid as it stands right after it was placed.
#[derive(Debug, Serialize, ToSchema)]
pub struct BidView {
    pub auction_id: Uuid,
    pub user_id: Uuid,
    pub bid_cents: i64,
    /// `alpha * price + beta / (gamma + weight)`, the price in currency units.
    pub score: f64,
    /// The bidder's rank right after this bid (1 is best).
    pub rank: u64,
    pub placed_at: DateTime<Utc>,
}

impl From<services::auctions::PlacedBid> for BidView {
    fn from(placed: services::auctions::PlacedBid) -> Self {
        BidView {
            auction_id: placed.bid.auction_id,
            user_id: placed.bid.user_id,
            bid_cents: placed.bid.bid_cents,
            score: placed.bid.score,
            rank: placed.rank,
            placed_at: placed.bid.placed_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaderboardEntryView {
    pub rank: u64,
    pub user_id: Uuid,
    pub username: String,
    pub bid_cents: i64,
    pub score: f64,
}

/// An auction's leaderboard (the `leaderboard` live message has the same
/// shape, plus `"type": "leaderboard"`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaderboardView {
    pub auction_id: Uuid,
    #[schema(example = "live")]
    pub status: &'static str,
    pub end_time: DateTime<Utc>,
    /// Everyone who holds a bid.
    pub bidders: u64,
    /// The best bids, best first.
    pub entries: Vec<LeaderboardEntryView>,
}

impl From<services::auctions::Standings> for LeaderboardView {
    fn from(standings: services::auctions::Standings) -> Self {
        LeaderboardView {
            auction_id: standings.auction.id,
            status: standings.auction.status.as_str(),
            end_time: standings.auction.end_time,
            bidders: standings.bidders,
            entries: standings
                .entries
                .into_iter()
                .map(|(rank, s)| LeaderboardEntryView {
                    rank,
                    user_id: s.user_id,
                    username: s.username,
                    bid_cents: s.bid_cents,
                    score: s.score,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The HTTP leaderboard and the live message are one shape.
    #[test]
    fn the_leaderboard_view_matches_the_live_message() {
        let now = Utc::now();
        let standings = services::auctions::Standings {
            auction: Auction {
                id: Uuid::now_v7(),
                product_id: Uuid::now_v7(),
                event_id: None,
                upset_price_cents: 100,
                currency: "EUR".into(),
                inventory: 1,
                alpha: 1.0,
                beta: 1.0,
                gamma: 1.0,
                start_time: now,
                end_time: now,
                extend_seconds: None,
                status: domain::auctions::AuctionStatus::Live,
                final_price_cents: None,
                created_at: now,
                updated_at: now,
            },
            bidders: 1,
            entries: vec![(
                1,
                gates::Standing {
                    user_id: Uuid::now_v7(),
                    username: "ann".into(),
                    bid_cents: 150,
                    score: 2.5,
                    placed_at_micros: 0,
                },
            )],
        };
        let live = services::auctions::leaderboard_json(&standings);
        let view = serde_json::to_value(LeaderboardView::from(standings)).unwrap();
        assert_eq!(view, live);
    }
}
