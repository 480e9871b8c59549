//! First data: the `admin create` command and the `--demo` seed.

use anyhow::Context;
use domain::user::Role;
use services::accounts::Registration;

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
/// kept in the data folder so later runs can print it again.
pub async fn demo(app: &App, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let password_file = data_dir.join("demo-admin-password.txt");
    if password_file.exists() {
        let password = std::fs::read_to_string(&password_file).context("cannot read the demo password")?;
        print_demo_admin(password.trim());
        return Ok(());
    }
    let password = demo_password();
    create_admin(app, DEMO_ADMIN_EMAIL, "admin", &password).await?;
    crate::write_private(&password_file, &password)?;
    print_demo_admin(&password);
    Ok(())
}

fn print_demo_admin(password: &str) {
    println!("demo admin: {DEMO_ADMIN_EMAIL} / {password}");
}

/// A random password that meets the password rules.
fn demo_password() -> String {
    let bytes: [u8; 9] = rand::random();
    let body: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("Demo-{body}-9")
}
