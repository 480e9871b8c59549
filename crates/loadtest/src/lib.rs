//! The load generator behind `swiftdrop loadtest`: it drives a running
//! server over real HTTP and prints throughput and latency percentiles.
//!
//! A real crowd comes from many addresses, and the server limits each
//! address; virtual users are therefore spread over source addresses in
//! 127.0.0.0/8 so the per-address limits stay on while the test runs.

pub mod auction;
pub mod auth;
mod crowd;
pub mod event_page;
pub mod fanout;
pub mod flash_sale;
pub mod frames;
mod memory;
mod setup;
pub mod soak;
mod stats;
mod wire;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Logins (bcrypt) at a fixed rate while signed-in users call
    /// `GET /api/v1/auth/me`: shows hashing does not stall other requests.
    Auth(auth::AuthOptions),
    /// A crowd bidding on one auction while pages read its leaderboard,
    /// then the board checked against the accepted bids.
    Auction(auction::AuctionOptions),
    /// A crowd buying one hot item, then the stock invariant read back.
    FlashSale(flash_sale::FlashSaleOptions),
    /// Readers of one live event page.
    EventPage(event_page::EventPageOptions),
    /// Many WebSocket listeners and a stream of changes.
    Fanout(fanout::FanoutOptions),
    /// A long mixed load (pages, orders, bids, sockets coming and going)
    /// reporting the server's memory and open files over time.
    Soak(soak::SoakOptions),
}

pub async fn run(scenario: Scenario) -> anyhow::Result<()> {
    match scenario {
        Scenario::Auth(options) => auth::run(options).await,
        Scenario::Auction(options) => auction::run(options).await,
        Scenario::FlashSale(options) => flash_sale::run(options).await,
        Scenario::EventPage(options) => event_page::run(options).await,
        Scenario::Fanout(options) => fanout::run(options).await.map(drop),
        Scenario::Soak(options) => soak::run(options).await,
    }
}
