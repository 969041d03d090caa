use std::fmt;

use super::invalid::distinct_words;

/// The audiences (resource servers) a client's access tokens name besides this provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audiences(Vec<String>);

impl Audiences {
    pub fn from_list(list: &[String]) -> Audiences {
        Audiences::from_stored(&list.join(" "))
    }

    pub fn from_stored(text: &str) -> Audiences {
        Audiences(distinct_words(text))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }
}

impl fmt::Display for Audiences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}
