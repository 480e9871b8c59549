use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestApp, error_fields, expect_json, expect_problem};

async fn create_product(app: &TestApp, admin: &str, body: Value) -> Value {
    expect_json(
        app.post("/api/v1/admin/products", Some(admin), body).await,
        StatusCode::CREATED,
    )
    .await
}

fn product(name: &str, category: &str, price: i64, tags: &[&str]) -> Value {
    json!({
        "name": name,
        "description": format!("The {name}, hand made."),
        "category": category,
        "tags": tags,
        "price_cents": price,
        "currency": "EUR",
    })
}

/// Follows `next_cursor` from `query` to the end, `limit` at a time.
async fn walk(app: &TestApp, query: &str, limit: u32, between_pages: impl AsyncFn(usize)) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    for page_number in 0.. {
        let mut url = format!("/api/v1/products?{query}&limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = expect_json(app.get(&url, None).await, StatusCode::OK).await;
        let data = page["data"].as_array().unwrap().clone();
        assert!(data.len() <= limit as usize);
        rows.extend(data);
        between_pages(page_number).await;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert_eq!(page["has_more"], false);
                break;
            }
        }
    }
    rows
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_sort_pages_through_each_product_once_in_order() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("curator").await;
    // Ties on purpose: repeated prices, names differing only in case, ratings.
    let names = [
        "Mug",
        "mug",
        "Apron",
        "apron",
        "Zebra toy",
        "Kettle",
        "Lamp",
        "lamp",
        "Bowl",
        "Cup",
    ];
    let mut originals = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let price = [500, 1500, 500, 2500][i % 4];
        let created = create_product(&app, &admin, product(name, "kitchen", price, &["home"])).await;
        originals.push(created["id"].as_str().unwrap().to_owned());
    }
    // Some ratings, with ties (two products at 4.0).
    for (i, rating) in [(0, 4), (1, 4), (2, 2), (3, 5)] {
        let (_, token, _) = app.customer(&format!("rater{i}")).await;
        let path = format!("/api/v1/products/{}/reviews", originals[i]);
        expect_json(
            app.post(&path, Some(&token), json!({"rating": rating})).await,
            StatusCode::CREATED,
        )
        .await;
    }
    let originals: HashSet<String> = originals.into_iter().collect();

    for sort in ["created_at", "price", "rating", "name"] {
        for order in ["asc", "desc"] {
            let query = format!("sort_by={sort}&sort_order={order}");
            let whole = expect_json(
                app.get(&format!("/api/v1/products?{query}&limit=100"), None)
                    .await,
                StatusCode::OK,
            )
            .await;
            let whole = whole["data"].as_array().unwrap().clone();
            assert_eq!(whole.len(), originals.len());
            assert_sorted(&whole, sort, order == "desc");

            let paged = walk(&app, &query, 3, async |_| {}).await;
            assert_eq!(
                ids(&paged),
                ids(&whole),
                "{query}: pages differ from one whole page"
            );
        }
    }

    // Products added between page requests never make a listed one repeat or vanish.
    let added = std::cell::Cell::new(0);
    let paged = walk(&app, "sort_by=price&sort_order=asc", 3, async |_| {
        let n = added.get();
        added.set(n + 1);
        create_product(
            &app,
            &admin,
            product(&format!("New {n}"), "kitchen", 100 + 900 * (n as i64 % 3), &[]),
        )
        .await;
    })
    .await;
    let seen = ids(&paged);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a product appeared twice");
    assert!(
        originals.iter().all(|id| seen.contains(id)),
        "an original product was skipped"
    );
    assert_sorted(&paged, "price", false);
}

/// Checks (sort key, id) is monotonic in the requested direction.
fn assert_sorted(rows: &[Value], sort: &str, descending: bool) {
    let key = |row: &Value| -> (String, f64, String) {
        let id = row["id"].as_str().unwrap().to_owned();
        match sort {
            "created_at" => (row["created_at"].as_str().unwrap().to_owned(), 0.0, id),
            "price" => (String::new(), row["price_cents"].as_f64().unwrap(), id),
            "rating" => (String::new(), row["average_rating"].as_f64().unwrap(), id),
            _ => (row["name"].as_str().unwrap().to_lowercase(), 0.0, id),
        }
    };
    for pair in rows.windows(2) {
        let (a, b) = (key(&pair[0]), key(&pair[1]));
        let ordered = if sort == "created_at" {
            let (ta, tb) = (
                chrono::DateTime::parse_from_rfc3339(&a.0).unwrap(),
                chrono::DateTime::parse_from_rfc3339(&b.0).unwrap(),
            );
            (ta, &a.2) <= (tb, &b.2)
        } else {
            (a.0.as_str(), a.1, &a.2) <= (b.0.as_str(), b.1, &b.2)
        };
        assert_eq!(
            ordered, !descending,
            "{sort} out of order: {} then {}",
            pair[0], pair[1]
        );
    }
}

#[tokio::test]
async fn filters_narrow_the_list() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("filterer").await;
    create_product(
        &app,
        &admin,
        product("Red Sneaker", "shoes", 5000, &["red", "sale"]),
    )
    .await;
    create_product(&app, &admin, product("Blue Sneaker", "shoes", 7000, &["blue"])).await;
    create_product(&app, &admin, product("Red Scarf", "apparel", 2000, &["red"])).await;
    let mut described = product("Plain Hat", "apparel", 1000, &[]);
    described["description"] = json!("Goes with any SNEAKER");
    create_product(&app, &admin, described).await;

    let names = async |query: &str| -> Vec<String> {
        let page = expect_json(
            app.get(&format!("/api/v1/products?{query}&sort_by=name"), None)
                .await,
            StatusCode::OK,
        )
        .await;
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names("search=sneaker").await,
        ["Blue Sneaker", "Plain Hat", "Red Sneaker"]
    );
    assert_eq!(names("search=RED").await, ["Red Scarf", "Red Sneaker"]);
    assert_eq!(names("category=Shoes").await, ["Blue Sneaker", "Red Sneaker"]);
    assert_eq!(names("tag=red").await, ["Red Scarf", "Red Sneaker"]);
    assert_eq!(
        names("min_price=2000&max_price=5000").await,
        ["Red Scarf", "Red Sneaker"]
    );
    assert_eq!(
        names("tag=red&category=shoes&max_price=5000&search=snea").await,
        ["Red Sneaker"]
    );
    assert!(
        names("search=%25").await.is_empty(),
        "% is literal, not a wildcard"
    );
}

#[tokio::test]
async fn bad_list_parameters_are_422() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("strict").await;
    for i in 0..3 {
        create_product(&app, &admin, product(&format!("P{i}"), "misc", 100 * i, &[])).await;
    }
    let first = expect_json(
        app.get("/api/v1/products?limit=1&sort_by=price", None).await,
        StatusCode::OK,
    )
    .await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let mut tampered = cursor.to_owned().into_bytes();
    tampered[1] = if tampered[1] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cases = [
        ("limit=0".to_owned(), "limit"),
        ("limit=101".to_owned(), "limit"),
        ("limit=ten".to_owned(), "limit"),
        ("sort_by=popularity".to_owned(), "sort_by"),
        ("sort_order=sideways".to_owned(), "sort_order"),
        ("min_price=abc".to_owned(), "min_price"),
        ("min_price=-1".to_owned(), "min_price"),
        ("min_price=500&max_price=100".to_owned(), "max_price"),
        (format!("sort_by=price&cursor={tampered}"), "cursor"),
        // A cursor is bound to its ordering.
        (format!("sort_by=name&cursor={cursor}"), "cursor"),
        (format!("sort_by=price&sort_order=desc&cursor={cursor}"), "cursor"),
    ];
    for (query, field) in cases {
        let response = app.get(&format!("/api/v1/products?{query}"), None).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), [field], "{query}");
    }
}

#[tokio::test]
async fn admins_manage_products_and_soft_delete_keeps_reviews() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("owner").await;
    let (_, customer, _) = app.customer("buyer").await;
    let forbidden = app
        .post(
            "/api/v1/admin/products",
            Some(&customer),
            product("X", "y", 1, &[]),
        )
        .await;
    expect_problem(forbidden, StatusCode::FORBIDDEN, "forbidden").await;

    let created = create_product(
        &app,
        &admin,
        product(" Teapot ", "Kitchen", 2599, &["Tea", "tea"]),
    )
    .await;
    assert_eq!(created["name"], "Teapot");
    assert_eq!(created["category"], "kitchen");
    assert_eq!(created["tags"], json!(["tea"]));
    assert_eq!(created["currency"], "EUR");
    assert_eq!(created["average_rating"], 0.0);
    assert_eq!(created["review_count"], 0);
    assert_eq!(created["image_url"], Value::Null);
    let id = created["id"].as_str().unwrap();

    let mut invalid = product("", "", -5, &[]);
    invalid["currency"] = json!("euro");
    let problem = expect_problem(
        app.post("/api/v1/admin/products", Some(&admin), invalid).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        error_fields(&problem),
        ["name", "category", "price_cents", "currency"]
    );

    let mut edit = product("Teapot XL", "kitchen", 3099, &["tea", "large"]);
    edit["image_url"] = json!("https://cdn.example/teapot.png");
    let updated = expect_json(
        app.put(&format!("/api/v1/admin/products/{id}"), Some(&admin), edit)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["name"], "Teapot XL");
    assert_eq!(updated["price_cents"], 3099);
    assert_eq!(updated["created_at"], created["created_at"]);
    let by_tag = expect_json(app.get("/api/v1/products?tag=large", None).await, StatusCode::OK).await;
    assert_eq!(by_tag["data"].as_array().unwrap().len(), 1);
    // Search follows the edit: the new name is found, the old text is not.
    let found = expect_json(
        app.get("/api/v1/products?search=pot%20xl", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1);

    let review_path = format!("/api/v1/products/{id}/reviews");
    expect_json(
        app.post(&review_path, Some(&customer), json!({"rating": 5}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let deleted = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/admin/products/{id}"),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get(&format!("/api/v1/products/{id}"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let list = expect_json(app.get("/api/v1/products", None).await, StatusCode::OK).await;
    assert!(list["data"].as_array().unwrap().is_empty());
    let again = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/admin/products/{id}"),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    expect_problem(again, StatusCode::NOT_FOUND, "not_found").await;
    let edit_deleted = app
        .put(
            &format!("/api/v1/admin/products/{id}"),
            Some(&admin),
            product("Z", "z", 1, &[]),
        )
        .await;
    expect_problem(edit_deleted, StatusCode::NOT_FOUND, "not_found").await;
    let review_deleted = app
        .post(&review_path, Some(&customer), json!({"rating": 1}))
        .await;
    expect_problem(review_deleted, StatusCode::NOT_FOUND, "not_found").await;

    // The review is still stored: soft delete removes nothing.
    let store = swiftdrop::open_store(&app.config, app.clock.clone())
        .await
        .unwrap();
    let summary = store::CatalogStore::review_summary(&store, id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!((summary.count, summary.rating_sum), (1, 5));
}

#[tokio::test]
async fn reviews_upsert_and_summaries_add_up() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("shopkeeper").await;
    let id = create_product(&app, &admin, product("Lamp", "home", 4000, &[])).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/products/{id}/reviews");
    let (_, ann, _) = app.customer("ann").await;
    let (_, ben, _) = app.customer("ben").await;
    let (_, cat, _) = app.customer("cat").await;

    let first = expect_json(
        app.post(&path, Some(&ann), json!({"rating": 2, "comment": "dim"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(first["username"], "ann");
    let second = expect_json(
        app.post(&path, Some(&ann), json!({"rating": 4, "comment": "grew on me"}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(second["id"], first["id"], "a second review replaces the first");
    expect_json(
        app.post(&path, Some(&ben), json!({"rating": 5})).await,
        StatusCode::CREATED,
    )
    .await;
    expect_json(
        app.post(&path, Some(&cat), json!({"rating": 5})).await,
        StatusCode::CREATED,
    )
    .await;

    let summary = expect_json(app.get(&format!("{path}/summary"), None).await, StatusCode::OK).await;
    assert_eq!(summary["product_id"], id.as_str());
    assert_eq!(summary["count"], 3);
    assert_eq!(
        summary["histogram"],
        json!({"1": 0, "2": 0, "3": 0, "4": 1, "5": 2})
    );
    let average = summary["average_rating"].as_f64().unwrap();
    assert!((average - 14.0 / 3.0).abs() < 1e-9, "{average}");
    let product = expect_json(
        app.get(&format!("/api/v1/products/{id}"), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(product["review_count"], 3);
    assert_eq!(product["average_rating"], summary["average_rating"]);

    let page = expect_json(app.get(&format!("{path}?limit=2"), None).await, StatusCode::OK).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["data"][0]["username"], "cat", "newest first");
    let rest = expect_json(
        app.get(
            &format!("{path}?limit=2&cursor={}", page["next_cursor"].as_str().unwrap()),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["comment"], "grew on me");

    for (body, field) in [
        (json!({"rating": 6}), "rating"),
        (json!({"rating": 0}), "rating"),
        (json!({"rating": 4.5}), "rating"),
        (json!({"comment": "no rating"}), "rating"),
        (json!({"rating": 3, "comment": "x".repeat(5001)}), "comment"),
    ] {
        let problem = expect_problem(
            app.post(&path, Some(&ann), body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(error_fields(&problem), [field], "{body}");
    }
    expect_problem(
        app.post(&path, None, json!({"rating": 3})).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let missing = format!("/api/v1/products/{}/reviews", uuid::Uuid::now_v7());
    expect_problem(
        app.post(&missing, Some(&ann), json!({"rating": 3})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.get(&format!("{missing}/summary"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn concurrent_reviews_keep_the_rating_exact() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("steward").await;
    let id = create_product(&app, &admin, product("Chair", "home", 9000, &[])).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tokens = Vec::new();
    for i in 0..24 {
        tokens.push(app.customer(&format!("reviewer{i}")).await.1);
    }
    let path = format!("/api/v1/products/{id}/reviews");
    // Every reviewer posts twice at once (create, then replace), all concurrently.
    let app = &app;
    let path = &path;
    let posts = tokens.iter().enumerate().flat_map(|(i, token)| {
        [1 + (i % 5) as i64, 5 - (i % 5) as i64].map(move |rating| async move {
            app.post(path, Some(token), json!({"rating": rating}))
                .await
                .status()
        })
    });
    let statuses = futures::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| s.is_success()), "{statuses:?}");

    let summary = expect_json(app.get(&format!("{path}/summary"), None).await, StatusCode::OK).await;
    assert_eq!(summary["count"], 24);
    let histogram = &summary["histogram"];
    let total: i64 = (1..=5).map(|r| histogram[r.to_string()].as_i64().unwrap()).sum();
    let sum: i64 = (1..=5)
        .map(|r| r * histogram[r.to_string()].as_i64().unwrap())
        .sum();
    assert_eq!(total, 24);
    let product = expect_json(
        app.get(&format!("/api/v1/products/{id}"), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(product["review_count"], 24);
    assert_eq!(product["average_rating"].as_f64().unwrap(), sum as f64 / 24.0);
}

#[tokio::test]
async fn wishlist_is_idempotent_and_private() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("keeper").await;
    let a = create_product(&app, &admin, product("Alpha", "x", 100, &[])).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = create_product(&app, &admin, product("Beta", "x", 200, &[])).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, me, _) = app.customer("wisher").await;
    let (_, other, _) = app.customer("stranger").await;
    let put = async |id: &str| {
        app.request(reqwest::Method::PUT, &format!("/api/v1/wishlist/{id}"), Some(&me))
            .send()
            .await
            .unwrap()
            .status()
    };
    let delete = async |id: &str| {
        app.request(
            reqwest::Method::DELETE,
            &format!("/api/v1/wishlist/{id}"),
            Some(&me),
        )
        .send()
        .await
        .unwrap()
        .status()
    };

    assert_eq!(put(&a).await, StatusCode::NO_CONTENT);
    assert_eq!(put(&a).await, StatusCode::NO_CONTENT);
    assert_eq!(put(&b).await, StatusCode::NO_CONTENT);
    let list = expect_json(app.get("/api/v1/wishlist", Some(&me)).await, StatusCode::OK).await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Beta", "Alpha"]);
    assert!(list["data"][0]["added_at"].is_string());
    assert_eq!(list["data"][0]["price_cents"], 200);
    let theirs = expect_json(app.get("/api/v1/wishlist", Some(&other)).await, StatusCode::OK).await;
    assert!(theirs["data"].as_array().unwrap().is_empty());

    assert_eq!(delete(&a).await, StatusCode::NO_CONTENT);
    assert_eq!(delete(&a).await, StatusCode::NO_CONTENT);
    assert_eq!(
        put(&uuid::Uuid::now_v7().to_string()).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(put("nope").await, StatusCode::UNPROCESSABLE_ENTITY);

    // A deleted product leaves the wishlist.
    app.request(
        reqwest::Method::DELETE,
        &format!("/api/v1/admin/products/{b}"),
        Some(&admin),
    )
    .send()
    .await
    .unwrap();
    let list = expect_json(app.get("/api/v1/wishlist", Some(&me)).await, StatusCode::OK).await;
    assert!(list["data"].as_array().unwrap().is_empty());
    expect_problem(
        app.get("/api/v1/wishlist", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\x01\x01\x01\0\x18\xdd\x8d\xb4\0\0\0\0IEND\xaeB`\x82";

async fn upload(
    app: &TestApp,
    token: Option<&str>,
    bytes: Vec<u8>,
    name: &str,
    mime: &str,
) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(mime)
        .unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    app.request(reqwest::Method::POST, "/api/v1/uploads", token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn uploads_round_trip_and_refuse_disguises() {
    let app = TestApp::start().await;
    let (_, token, _) = app.customer("uploader").await;

    let created = expect_json(
        upload(&app, Some(&token), PNG.to_vec(), "dot.png", "image/png").await,
        StatusCode::CREATED,
    )
    .await;
    let url = created["url"].as_str().unwrap();
    assert!(url.starts_with("/uploads/") && url.ends_with(".png"), "{url}");
    let served = app.get(url, None).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);

    // The type comes from the bytes: a PDF named .png is a PDF.
    let pdf = expect_json(
        upload(
            &app,
            Some(&token),
            b"%PDF-1.7\n%%EOF\n".to_vec(),
            "x.png",
            "image/png",
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert!(pdf["url"].as_str().unwrap().ends_with(".pdf"));
    assert_eq!(
        app.get(pdf["url"].as_str().unwrap(), None).await.headers()["content-type"],
        "application/pdf"
    );

    let disguised = upload(
        &app,
        Some(&token),
        b"<html><script>alert(1)</script>".to_vec(),
        "cat.png",
        "image/png",
    )
    .await;
    let problem = expect_problem(disguised, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["file"]);
    let empty = upload(&app, Some(&token), Vec::new(), "empty.png", "image/png").await;
    expect_problem(empty, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let mut big = PNG.to_vec();
    big.resize(10 * 1024 * 1024 + 1, 0);
    let oversized = upload(&app, Some(&token), big, "big.png", "image/png").await;
    expect_problem(oversized, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    let no_file = app
        .request(reqwest::Method::POST, "/api/v1/uploads", Some(&token))
        .multipart(reqwest::multipart::Form::new().text("note", "hi"))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(no_file, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["file"]);
    let not_multipart = app
        .post("/api/v1/uploads", Some(&token), json!({"file": "x"}))
        .await;
    expect_problem(
        not_multipart,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    expect_problem(
        upload(&app, None, PNG.to_vec(), "a.png", "image/png").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;

    let unknown = format!("/uploads/{}.png", uuid::Uuid::now_v7().simple());
    expect_problem(app.get(&unknown, None).await, StatusCode::NOT_FOUND, "not_found").await;
    for probe in [
        "/uploads/..%2Fsecret.key",
        "/uploads/secret.key",
        "/uploads/x.exe",
    ] {
        assert_eq!(
            app.get(probe, None).await.status(),
            StatusCode::NOT_FOUND,
            "{probe}"
        );
    }
}

#[tokio::test]
async fn the_dashboard_summarises_the_catalog() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("analyst").await;
    let empty = expect_json(
        app.get("/api/v1/admin/dashboard", Some(&admin)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(empty["products"]["total"], 0);
    assert_eq!(empty["products"]["average_rating"], Value::Null);
    assert_eq!(empty["products"]["highest_priced"], Value::Null);

    let mut ids = Vec::new();
    for (i, price) in [300, 9900, 1200, 450, 800, 2000, 50].into_iter().enumerate() {
        ids.push(
            create_product(&app, &admin, product(&format!("Item {i}"), "misc", price, &[])).await["id"]
                .clone(),
        );
    }
    let doomed = ids[1].as_str().unwrap();
    app.request(
        reqwest::Method::DELETE,
        &format!("/api/v1/admin/products/{doomed}"),
        Some(&admin),
    )
    .send()
    .await
    .unwrap();
    let (_, a, _) = app.customer("critic_a").await;
    let (_, b, _) = app.customer("critic_b").await;
    let first = ids[0].as_str().unwrap();
    let last = ids[6].as_str().unwrap();
    app.post(
        &format!("/api/v1/products/{first}/reviews"),
        Some(&a),
        json!({"rating": 5}),
    )
    .await;
    app.post(
        &format!("/api/v1/products/{first}/reviews"),
        Some(&b),
        json!({"rating": 4}),
    )
    .await;
    app.post(
        &format!("/api/v1/products/{last}/reviews"),
        Some(&a),
        json!({"rating": 3}),
    )
    .await;

    let dashboard = expect_json(
        app.get("/api/v1/admin/dashboard", Some(&admin)).await,
        StatusCode::OK,
    )
    .await;
    let products = &dashboard["products"];
    assert_eq!(products["total"], 6);
    assert_eq!(products["average_rating"], 4.0);
    assert_eq!(products["highest_priced"]["price_cents"], 2000);
    let recent: Vec<&str> = products["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(recent, ["Item 6", "Item 5", "Item 4", "Item 3", "Item 2"]);
    assert_eq!(dashboard["users"], json!({"total": 3, "active": 3, "admins": 1}));
    let (_, customer, _) = app.customer("nosy").await;
    expect_problem(
        app.get("/api/v1/admin/dashboard", Some(&customer)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn uploads_round_trip_through_s3_compatible_storage() {
    let Some(endpoint) = std::env::var("SWIFTDROP_TEST_S3_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        eprintln!(
            "SKIPPED uploads_round_trip_through_s3: set SWIFTDROP_TEST_S3_ENDPOINT to an S3-compatible server"
        );
        return;
    };
    // A bucket of this test's own on the S3-compatible server.
    let bucket = format!("t{}", uuid::Uuid::now_v7().simple());
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "cannot create the test bucket: {}",
        created.status()
    );
    let app = TestApp::start_with(|c| {
        c.s3_bucket = Some(bucket.clone());
        c.s3_endpoint = Some(endpoint.clone());
        c.s3_region = Some("us-east-1".into());
        c.s3_access_key_id = Some("test".into());
        c.s3_secret_access_key = Some("test".into());
    })
    .await;
    let (_, token, _) = app.customer("s3_uploader").await;
    let created = expect_json(
        upload(&app, Some(&token), PNG.to_vec(), "dot.png", "image/png").await,
        StatusCode::CREATED,
    )
    .await;
    let url = created["url"].as_str().unwrap();
    let served = app.get(url, None).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);
    // The object really is in the bucket, not on local disk.
    let key = url.trim_start_matches("/uploads/");
    let listing = reqwest::get(format!("{endpoint}/{bucket}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listing.contains(key), "{listing}");
    assert!(!app.config.data_dir.join("uploads").join(key).exists());
}
