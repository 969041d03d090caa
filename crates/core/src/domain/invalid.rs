//! What every domain value's parser shares.

/// A value that does not parse, with what is wrong with it in words a client or an operator
/// can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Space-separated words, each once, in the order first given.
pub(super) fn distinct_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        if !words.iter().any(|w| w == word) {
            words.push(word.to_string());
        }
    }
    words
}
