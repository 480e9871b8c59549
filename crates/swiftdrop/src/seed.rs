//! First data: the `admin create` command and the demo seed.

use anyhow::Context;
use domain::auctions::AuctionInput;
use domain::catalog::ProductInput;
use domain::events::{EventInput, ItemInput};
use domain::user::Role;
use services::accounts::{Principal, Registration};
use services::catalog::BrowseRequest;
use services::events::DropInput;

use crate::App;

pub const DEMO_ADMIN_EMAIL: &str = "admin@swiftdrop.local";

/// Creates an admin account.
pub async fn create_admin(app: &App, email: &str, username: &str, password: &str) -> anyhow::Result<()> {
    let registration = Registration {
        email: email.to_owned(),
        username: username.to_owned(),
        password: password.to_owned(),
        full_name: None,
    };
    app.state
        .accounts
        .create_user(registration, Role::Admin)
        .await
        .map_err(|err| anyhow::anyhow!("cannot create the admin: {err}"))?;
    Ok(())
}

/// Seeds the demo once: an admin whose password is generated, printed and
/// kept in the data folder so later runs can print it again, and a catalog
/// worth browsing.
pub async fn demo(app: &App, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let password_file = data_dir.join("demo-admin-password.txt");
    let password = if password_file.exists() {
        std::fs::read_to_string(&password_file)
            .context("cannot read the demo password")?
            .trim()
            .to_owned()
    } else {
        let password = demo_password();
        create_admin(app, DEMO_ADMIN_EMAIL, "admin", &password).await?;
        crate::secrets::write_private(&password_file, &password)?;
        password
    };
    if app
        .state
        .catalog
        .product_count()
        .await
        .map_err(anyhow::Error::msg)?
        == 0
    {
        seed_products(app, demo_catalog()).await?;
        demo_drop(app).await?;
    }
    println!("demo admin: {DEMO_ADMIN_EMAIL} / {password}");
    Ok(())
}

/// A drop of three demo products that goes live two minutes from now.
async fn demo_drop(app: &App) -> anyhow::Result<()> {
    let admin = app
        .store
        .user_by_login(DEMO_ADMIN_EMAIL)
        .await
        .context("the demo admin")?
        .user;
    let principal = Principal {
        user_id: admin.id,
        role: Role::Admin,
        session_id: uuid::Uuid::nil(),
    };
    let products = app
        .state
        .catalog
        .browse(BrowseRequest {
            category: Some("sneakers".into()),
            limit: Some(3),
            ..BrowseRequest::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("demo drop: {e}"))?;
    let items = products
        .data
        .iter()
        .zip([(50, Some(2)), (100, Some(4)), (20, Some(1))])
        .map(|(product, (stock, limit))| ItemInput {
            id: None,
            product_id: product.id,
            price_cents: product.price_cents * 8 / 10,
            stock,
            per_user_limit: limit,
        })
        .collect();
    let start = app.clock.now() + chrono::Duration::minutes(2);
    let event = EventInput {
        title: "Midnight Sneaker Drop".into(),
        description: "Three limited pairs at 20% off. Reserve, then confirm within ten minutes.".into(),
        location: "Online".into(),
        start_time: Some(start),
        end_time: Some(start + chrono::Duration::hours(2)),
        tags: vec!["sneakers".into(), "limited".into()],
        max_attendees: None,
        coordinates: None,
        attachment_url: None,
    };
    let drop = DropInput {
        items,
        reservation_ttl_seconds: None,
    };
    let details = app
        .state
        .events
        .create(&principal, event, Some(drop))
        .await
        .map_err(|e| anyhow::anyhow!("demo drop: {e}"))?;
    // The drop's headline piece is auctioned: it goes live with the drop,
    // ten winners, each pays their own bid; loyal customers (weight) get a
    // small edge, and a late bid extends the end by a minute.
    let headline = products.data.first().context("a demo product")?;
    let auction = AuctionInput {
        product_id: headline.id,
        event_id: Some(details.event.id),
        upset_price_cents: headline.price_cents / 2,
        inventory: 10,
        alpha: 1.0,
        beta: 20.0,
        gamma: 1.0,
        start_time: start,
        end_time: start + chrono::Duration::minutes(30),
        extend_seconds: Some(60),
    };
    app.state
        .auctions
        .create(&principal, auction)
        .await
        .map_err(|e| anyhow::anyhow!("demo auction: {e}"))?;
    println!(
        "demo drop: \"Midnight Sneaker Drop\" and its auction go live at {}",
        start.format("%H:%M:%S UTC")
    );
    Ok(())
}

/// Adds `count` generated products (for trying the catalog at scale).
pub async fn bulk_products(app: &App, count: usize) -> anyhow::Result<()> {
    const BATCH: usize = 2_000;
    if count == 0 {
        return Ok(());
    }
    let mut done = 0;
    while done < count {
        let batch: Vec<ProductInput> = (done..count.min(done + BATCH)).map(generated_product).collect();
        done += batch.len();
        seed_products(app, batch).await?;
    }
    println!("added {count} products");
    Ok(())
}

async fn seed_products(app: &App, products: Vec<ProductInput>) -> anyhow::Result<()> {
    app.state
        .catalog
        .import_products(products)
        .await
        .map_err(|err| anyhow::anyhow!("cannot seed products: {err}"))?;
    Ok(())
}

const CATEGORIES: [(&str, &[&str]); 6] = [
    (
        "sneakers",
        &[
            "Runner",
            "Court Classic",
            "Trail Blazer",
            "High Top",
            "Slip-On",
            "Retro Jogger",
            "Skate Pro",
            "Canvas Low",
        ],
    ),
    (
        "streetwear",
        &[
            "Hoodie",
            "Bomber Jacket",
            "Cargo Pants",
            "Graphic Tee",
            "Beanie",
            "Track Jacket",
            "Crewneck",
            "Bucket Hat",
        ],
    ),
    (
        "electronics",
        &[
            "Wireless Earbuds",
            "Smart Watch",
            "Mechanical Keyboard",
            "Portable Speaker",
            "Action Camera",
            "E-Reader",
            "Power Bank",
            "Drone",
        ],
    ),
    (
        "home",
        &[
            "Pour-Over Kettle",
            "Ceramic Mug Set",
            "Linen Throw",
            "Desk Lamp",
            "Cast Iron Pan",
            "Plant Pot",
            "Wool Rug",
            "Scented Candle",
        ],
    ),
    (
        "collectibles",
        &[
            "Vinyl Figure",
            "Trading Card Box",
            "Art Print",
            "Enamel Pin Set",
            "Signed Poster",
            "Model Kit",
            "Limited Comic",
            "Designer Toy",
        ],
    ),
    (
        "beauty",
        &[
            "Face Serum",
            "Lip Kit",
            "Perfume",
            "Hair Oil",
            "Clay Mask",
            "Sun Cream",
            "Eye Palette",
            "Body Lotion",
        ],
    ),
];
const EDITIONS: [&str; 4] = ["", "Limited", "Drop 01", "Collab"];
const COLOURS: [&str; 6] = ["black", "white", "red", "blue", "green", "gold"];

fn demo_catalog() -> Vec<ProductInput> {
    CATEGORIES
        .iter()
        .enumerate()
        .flat_map(|(c, (category, names))| {
            names.iter().enumerate().map(move |(n, name)| {
                let edition = EDITIONS[(c + n) % EDITIONS.len()];
                let colour = COLOURS[(c * 3 + n) % COLOURS.len()];
                let full_name = if edition.is_empty() {
                    (*name).to_owned()
                } else {
                    format!("{name} {edition}")
                };
                let mut tags = vec![colour.to_owned()];
                if !edition.is_empty() {
                    tags.push(edition.to_lowercase().replace(' ', "-"));
                }
                ProductInput {
                    description: format!("{full_name} in {colour}. A SwiftDrop {category} favourite."),
                    name: full_name,
                    category: (*category).to_owned(),
                    tags,
                    price_cents: 990 + ((c * 37 + n * 53) % 40) as i64 * 500,
                    currency: "EUR".to_owned(),
                    image_url: None,
                }
            })
        })
        .collect()
}

fn generated_product(i: usize) -> ProductInput {
    let (category, names) = CATEGORIES[i % CATEGORIES.len()];
    let name = names[(i / CATEGORIES.len()) % names.len()];
    let colour = COLOURS[(i / 7) % COLOURS.len()];
    ProductInput {
        name: format!("{name} #{i}"),
        description: format!("{name} in {colour}, batch {}", i / 1000),
        category: category.to_owned(),
        tags: vec![colour.to_owned()],
        price_cents: 100 + ((i * 7919) % 100_000) as i64,
        currency: "EUR".to_owned(),
        image_url: None,
    }
}

/// A random password that meets the password rules.
fn demo_password() -> String {
    let bytes: [u8; 9] = rand::random();
    let body: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("Demo-{body}-9")
}
