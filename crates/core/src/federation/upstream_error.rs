/// An upstream that failed or answered something that cannot be trusted. The text is for the
/// log only; the person sees that the sign-in failed.
#[derive(Debug, thiserror::Error)]
#[error("upstream sign-in failed: {0}")]
pub struct UpstreamError(pub String);
