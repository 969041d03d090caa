//! The token endpoint (RFC 6749 §3.2): authenticates the client and runs the grant it asked
//! for. The grants share their vocabulary (`GrantError`, `Params`, scope rules) from the
//! module above; this file is the only one that knows them all.

use super::{
    GrantError, TokenRequest, TokenResponse, authenticate_client, client_credentials, password,
};
use crate::authorize::code as authorization_code;
use crate::domain::GrantType;
use crate::refresh::grant as refresh;
use crate::services::Services;

/// POST /token: authenticates the client, then runs the grant it asked for.
pub async fn token(svc: &Services, request: TokenRequest) -> Result<TokenResponse, GrantError> {
    let name = request.params.required("grant_type")?;
    let grant =
        GrantType::parse(name).ok_or_else(|| GrantError::UnsupportedGrantType(name.to_string()))?;
    let issued = match grant {
        // The hot path: the client is authenticated inside the refresh's own database call.
        GrantType::RefreshToken => refresh::grant(svc, &request.client, &request.params).await?,
        GrantType::AuthorizationCode => {
            let client = authenticate_client(svc, &request.client).await?;
            authorization_code::grant(svc, &client, &request.params).await?
        }
        GrantType::Password => {
            let client = authenticate_client(svc, &request.client).await?;
            password::grant(svc, &client, &request).await?
        }
        GrantType::ClientCredentials => {
            let client = authenticate_client(svc, &request.client).await?;
            client_credentials::grant(svc, &client, &request.params)?
        }
    };
    svc.metrics.token_issued(grant.as_str());
    Ok(issued.into_response())
}
