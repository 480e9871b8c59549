//! Form helpers: the messages shown next to each field.

use domain::ValidationErrors;

/// Messages by field name, as the service named them.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: &str) {
        self.0.push((field.to_owned(), message.to_owned()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages of `field`, joined.
    pub fn get(&self, field: &str) -> Option<String> {
        let messages: Vec<&str> = self
            .0
            .iter()
            .filter(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
            .collect();
        (!messages.is_empty()).then(|| messages.join("; "))
    }

    /// Messages of fields the form does not show (`shown`: the names it
    /// shows, comma-separated), to list at its top.
    pub fn others(&self, shown: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(f, _)| !shown.split(',').any(|s| s == f))
            .map(|(f, m)| format!("{f}: {m}"))
            .collect()
    }
}

impl From<ValidationErrors> for FieldErrors {
    fn from(errors: ValidationErrors) -> Self {
        FieldErrors(
            errors
                .fields()
                .iter()
                .map(|f| (f.field.clone(), f.message.clone()))
                .collect(),
        )
    }
}
