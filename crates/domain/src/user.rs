//! Accounts: roles and the rules a registration must meet.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ValidationErrors;

/// An account. Its password hash is not part of it: only the login path
/// reads that ([`Credentials`]), so no view can leak it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub full_name: Option<String>,
    pub display_name: Option<String>,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub role: Role,
    pub is_active: bool,
    pub is_verified: bool,
    /// Auction weight, set by an admin.
    pub weight: f64,
    /// Moves on a password change or deactivation; tokens of an earlier
    /// epoch stop working. Internal: never shown.
    pub token_epoch: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user and the hash their password is checked against.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Credentials {
    #[cfg_attr(feature = "sqlx", sqlx(flatten))]
    pub user: User,
    pub password_hash: String,
}

/// An account about to be stored.
pub struct NewUser {
    pub email: String,
    pub username: String,
    pub full_name: Option<String>,
    pub password_hash: String,
    pub role: Role,
    pub is_verified: bool,
}

/// A profile edit: `Some` fields change, `None` fields stay.
#[derive(Debug, Default)]
pub struct ProfileUpdate {
    pub display_name: Option<Option<String>>,
    pub full_name: Option<Option<String>>,
}

/// An admin edit of the fields a user cannot set on themselves.
#[derive(Debug, Default)]
pub struct AdminUpdate {
    pub role: Option<Role>,
    pub weight: Option<f64>,
}

#[derive(Debug, Default)]
pub struct UserFilter {
    pub search: Option<String>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
}

/// Users by kind, for the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct UserCounts {
    pub total: i64,
    pub active: i64,
    pub admins: i64,
}

/// What the token check needs to know about a user.
#[derive(Debug, Clone)]
pub struct AuthState {
    pub role: Role,
    pub is_active: bool,
    pub token_epoch: i64,
    /// Sessions revoked recently enough that their access tokens could still
    /// be unexpired.
    pub revoked_sessions: Vec<Uuid>,
}

/// What a user may do. Checked in one place (`Role::allows`), so adding a
/// role means adding a variant and its permissions here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
}

/// Capabilities that routes ask for; roles grant them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Use the shop as a signed-in buyer.
    Shop,
    /// Manage users, catalog, drops and auctions.
    Administer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        match (self, permission) {
            (_, Permission::Shop) => true,
            (Role::Admin, Permission::Administer) => true,
            (Role::Customer, Permission::Administer) => false,
        }
    }
}

impl TryFrom<String> for Role {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Role::parse(&value).ok_or_else(|| format!("unknown role {value:?}"))
    }
}

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 50;
pub const PASSWORD_MIN: usize = 8;
/// bcrypt reads at most 72 bytes; refusing longer passwords keeps two
/// passwords that share their first 72 bytes from being the same password.
pub const PASSWORD_MAX_BYTES: usize = 72;
pub const NAME_MAX: usize = 100;
pub const EMAIL_MAX: usize = 254;

pub fn check_username(username: &str) -> Result<(), String> {
    let len = username.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
        return Err(format!("must be {USERNAME_MIN} to {USERNAME_MAX} characters"));
    }
    if !username.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("may contain only letters, digits and underscores".into());
    }
    Ok(())
}

pub fn check_password(password: &str) -> Result<(), String> {
    let mut missing = Vec::new();
    if password.chars().count() < PASSWORD_MIN {
        missing.push(format!("at least {PASSWORD_MIN} characters"));
    }
    if !password.chars().any(|c| c.is_uppercase()) {
        missing.push("an uppercase letter".to_owned());
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        missing.push("a digit".to_owned());
    }
    if !password
        .chars()
        .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
    {
        missing.push("a special character".to_owned());
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(format!("must be at most {PASSWORD_MAX_BYTES} bytes"));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("must contain {}", missing.join(", ")))
    }
}

/// A deliberately plain check: one `@`, a non-empty local part and a dotted
/// domain without spaces. Deliverability is proven by verification, not regex.
pub fn check_email(email: &str) -> Result<(), String> {
    let invalid = || Err("must be a valid email address".to_owned());
    if email.len() > EMAIL_MAX || email.chars().any(char::is_whitespace) {
        return invalid();
    }
    let Some((local, domain)) = email.split_once('@') else {
        return invalid();
    };
    let domain_ok =
        !domain.contains('@') && domain.contains('.') && domain.split('.').all(|label| !label.is_empty());
    if local.is_empty() || !domain_ok {
        return invalid();
    }
    Ok(())
}

pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Optional display text: trimmed, at most `NAME_MAX` characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.chars().count() > NAME_MAX {
        Err(format!("must be at most {NAME_MAX} characters"))
    } else {
        Ok(())
    }
}

/// What a registration must satisfy before it reaches the database.
pub fn validate_registration(
    email: &str,
    username: &str,
    password: &str,
    full_name: Option<&str>,
) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    errors.check("email", check_email(email));
    errors.check("username", check_username(username));
    errors.check("password", check_password(password));
    if let Some(name) = full_name {
        errors.check("full_name", check_name(name));
    }
    errors.into_result()
}

/// Auction weights feed `beta / (gamma + weight)`: finite and not negative.
pub fn check_weight(weight: f64) -> Result<(), String> {
    if weight.is_finite() && weight >= 0.0 {
        Ok(())
    } else {
        Err("must be a finite number, 0 or more".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(check_username("abc").is_ok());
        assert!(check_username("Ab_9").is_ok());
        assert!(check_username(&"a".repeat(50)).is_ok());
        assert!(check_username("ab").is_err());
        assert!(check_username(&"a".repeat(51)).is_err());
        assert!(check_username("a b c").is_err());
        assert!(check_username("al@ice").is_err());
        assert!(check_username("élan").is_err());
    }

    #[test]
    fn passwords_name_what_is_missing() {
        assert!(check_password("Secret#123").is_ok());
        let short = check_password("S#1a").unwrap_err();
        assert!(short.contains("at least 8"), "{short}");
        assert!(check_password("secret#123").unwrap_err().contains("uppercase"));
        assert!(check_password("Secret#abc").unwrap_err().contains("digit"));
        assert!(check_password("Secret1234").unwrap_err().contains("special"));
        assert!(check_password(&format!("Aa1#{}", "x".repeat(80))).is_err());
    }

    #[test]
    fn emails() {
        assert!(check_email("a@b.co").is_ok());
        for bad in ["", "a", "a@", "@b.co", "a@b", "a@b..co", "a b@c.de", "a@b@c.de"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert_eq!(normalize_email("  Ann@Example.COM "), "ann@example.com");
    }

    #[test]
    fn registration_reports_every_field() {
        let errors = validate_registration("nope", "x", "short", None).unwrap_err();
        let fields: Vec<&str> = errors.fields().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "username", "password"]);
    }

    #[test]
    fn roles_and_permissions() {
        assert!(Role::Admin.allows(Permission::Administer));
        assert!(!Role::Customer.allows(Permission::Administer));
        assert!(Role::Customer.allows(Permission::Shop));
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn weights() {
        assert!(check_weight(0.0).is_ok());
        assert!(check_weight(2.5).is_ok());
        assert!(check_weight(-1.0).is_err());
        assert!(check_weight(f64::NAN).is_err());
        assert!(check_weight(f64::INFINITY).is_err());
    }
}
