//! The command line as an operator uses it: the built binary, a data folder.

use std::process::Command;

use reqwest::StatusCode;

use crate::harness::{TestApp, expect_json};

fn swiftdrop(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_swiftdrop"));
    command
        .env_clear()
        .env("SWIFTDROP_DATA_DIR", data_dir)
        .env("SWIFTDROP_BCRYPT_COST", "4");
    command
}

#[tokio::test]
async fn admin_create_then_log_in_through_the_server() {
    let data = tempfile::tempdir().unwrap();
    let output = swiftdrop(data.path())
        .args([
            "admin",
            "create",
            "--email",
            "ops@example.com",
            "--username",
            "ops",
            "--password",
            "Opsy#2026",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let data_dir = data.path().to_owned();
    let app = TestApp::start_with(move |c| {
        c.data_dir = data_dir;
        c.database_url = None;
    })
    .await;
    let tokens = app.login("ops@example.com", "Opsy#2026").await;
    let token = tokens["access_token"].as_str().unwrap();
    let me = expect_json(app.get("/api/v1/auth/me", Some(token)).await, StatusCode::OK).await;
    assert_eq!(me["role"], "admin");
    expect_json(app.get("/api/v1/admin/users", Some(token)).await, StatusCode::OK).await;

    // A weak password is refused with the rule named.
    let weak = swiftdrop(data.path())
        .args([
            "admin",
            "create",
            "--email",
            "x@example.com",
            "--username",
            "xx_x",
            "--password",
            "weak",
        ])
        .output()
        .unwrap();
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));
}

/// Runs `admin create` for `username` with `stdin` piped in.
fn create_with_stdin(
    data_dir: &std::path::Path,
    username: &str,
    extra: &[&str],
    stdin: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut child = swiftdrop(data_dir)
        .args([
            "admin",
            "create",
            "--email",
            &format!("{username}@example.com"),
            "--username",
            username,
        ])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn admin_create_reads_the_password_from_stdin() {
    let data = tempfile::tempdir().unwrap();
    let output = create_with_stdin(data.path(), "piped", &["--password-stdin"], "Piped#2026\n");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Both ways at once is refused, and so is an empty line.
    let both = create_with_stdin(
        data.path(),
        "both",
        &["--password-stdin", "--password", "Piped#2026"],
        "Piped#2026\n",
    );
    assert!(!both.status.success());
    let empty = create_with_stdin(data.path(), "empty", &["--password-stdin"], "\n");
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no password"));
    // Without a terminal to prompt on (a new session has none), it says
    // what to do instead rather than waiting.
    let setsid = std::path::Path::new("/usr/bin/setsid");
    if setsid.exists() {
        let prompted = Command::new(setsid)
            .env_clear()
            .env("SWIFTDROP_DATA_DIR", data.path())
            .env("SWIFTDROP_BCRYPT_COST", "4")
            .arg("--wait")
            .arg(env!("CARGO_BIN_EXE_swiftdrop"))
            .args([
                "admin",
                "create",
                "--email",
                "t@example.com",
                "--username",
                "prompted",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!prompted.status.success());
        let stderr = String::from_utf8_lossy(&prompted.stderr);
        assert!(stderr.contains("--password-stdin"), "{stderr}");
    }

    let data_dir = data.path().to_owned();
    let app = TestApp::start_with(move |c| {
        c.data_dir = data_dir;
        c.database_url = None;
    })
    .await;
    let tokens = app.login("piped", "Piped#2026").await;
    let token = tokens["access_token"].as_str().unwrap();
    let me = expect_json(app.get("/api/v1/auth/me", Some(token)).await, StatusCode::OK).await;
    assert_eq!(me["role"], "admin");
}

#[test]
fn a_bad_setting_stops_the_start_naming_it() {
    let data = tempfile::tempdir().unwrap();
    let output = swiftdrop(data.path())
        .env("SWIFTDROP_ACCESS_TTL_SECONDS", "soon")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SWIFTDROP_ACCESS_TTL_SECONDS"), "{stderr}");
}

#[test]
fn zero_configuration_creates_the_data_folder_and_a_private_key() {
    let data = tempfile::tempdir().unwrap();
    let folder = data.path().join("fresh");
    let output = swiftdrop(&folder).arg("migrate").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(folder.join("swiftdrop.db").exists());
    let output = swiftdrop(&folder).arg("seed").output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("admin@swiftdrop.local"), "{stdout}");
    let key = folder.join("secret.key");
    assert!(key.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(stdout.contains("demo drop"), "{stdout}");
    assert!(stdout.contains("its auction go live"), "{stdout}");
    // Seeding again keeps the same admin, prints the same password, adds nothing.
    let again = swiftdrop(&folder).arg("seed").output().unwrap();
    let again = String::from_utf8_lossy(&again.stdout);
    let admin_line = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("demo admin"))
            .map(str::to_owned)
    };
    assert_eq!(admin_line(&again), admin_line(&stdout));
    assert!(!again.contains("demo drop"), "{again}");
}
