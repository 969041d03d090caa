/// The claims of a verified access token (RFC 9068 §2.2, plus Tessera's `roles`): the type
/// the server signs, shared through `tessera-proto`.
///
/// Only a token that passed every check becomes a `Claims`: holding one means the signature,
/// issuer, audience, type and validity window were all checked, and that every claim
/// RFC 9068 §2.2 requires is present.
pub type Claims = tessera_proto::AccessClaims;
