// Written by hand to match migrations/{sqlite,postgres}: only the SQL types both backends share
// through diesel's MultiConnection (Text, BigInt).

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        email_lower -> Text,
        name -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        roles -> Text,
        security_stamp -> Text,
        email_verified_at -> Nullable<BigInt>,
        disabled_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        name -> Text,
        secret_hash -> Nullable<Text>,
        grant_types -> Text,
        scopes -> Text,
        redirect_uris -> Text,
        audiences -> Text,
        access_token_ttl_secs -> Nullable<BigInt>,
        refresh_idle_ttl_secs -> Nullable<BigInt>,
        refresh_absolute_ttl_secs -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        consent -> Text,
        post_logout_redirect_uris -> Text,
        backchannel_logout_uri -> Nullable<Text>,
        backchannel_logout_session_required -> BigInt,
        require_mfa -> BigInt,
        signing_alg -> Text,
    }
}

diesel::table! {
    refresh_token_families (id) {
        id -> Text,
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        security_stamp -> Text,
        auth_time -> BigInt,
        created_at -> BigInt,
        absolute_expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        revoked_reason -> Nullable<Text>,
        session_id -> Nullable<Text>,
        amr -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        family_id -> Text,
        parent_hash -> Nullable<Text>,
        replaced_by -> Nullable<Text>,
        scope -> Text,
        issued_at -> BigInt,
        idle_expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        used_at_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    authorization_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        user_id -> Text,
        redirect_uri -> Text,
        scope -> Text,
        nonce -> Nullable<Text>,
        code_challenge -> Nullable<Text>,
        code_challenge_method -> Nullable<Text>,
        auth_time -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        family_id -> Nullable<Text>,
        access_token_jti -> Nullable<Text>,
        access_token_expires_at -> Nullable<BigInt>,
        session_id -> Nullable<Text>,
    }
}

diesel::table! {
    federated_identities (id) {
        id -> Text,
        provider -> Text,
        subject -> Text,
        user_id -> Text,
        email -> Nullable<Text>,
        created_at -> BigInt,
        last_login_at -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        occurred_at -> BigInt,
        event -> Text,
        user_id -> Nullable<Text>,
        client_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        state -> Text,
        created_at -> BigInt,
        activated_at -> Nullable<BigInt>,
        retiring_at -> Nullable<BigInt>,
        retired_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    signing_key_material (kid) {
        kid -> Text,
        kek_id -> Text,
        sealed -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(refresh_token_families -> users (user_id));
diesel::joinable!(refresh_token_families -> clients (client_id));
diesel::joinable!(refresh_tokens -> refresh_token_families (family_id));
diesel::joinable!(authorization_codes -> clients (client_id));
diesel::joinable!(authorization_codes -> users (user_id));
diesel::joinable!(federated_identities -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    clients,
    refresh_token_families,
    refresh_tokens,
    authorization_codes,
    federated_identities,
    audit_events,
    signing_keys,
    signing_key_material,
    login_throttles,
    revoked_access_tokens,
    federation_states,
    account_tokens,
    mail_outbox,
    pending_links,
    known_sign_ins,
    self_registrations,
    browser_sessions,
    session_clients,
    consents,
    mfa_pending,
    totp_credentials,
    recovery_codes,
    passkeys,
    webauthn_ceremonies,
);

diesel::table! {
    mfa_pending (secret_hash) {
        secret_hash -> Text,
        user_id -> Text,
        amr -> Text,
        persistent -> BigInt,
        session_id -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    account_tokens (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        purpose -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    mail_outbox (id) {
        id -> Text,
        kind -> Text,
        recipient_lower -> Text,
        user_id -> Nullable<Text>,
        created_at -> BigInt,
        attempts -> BigInt,
        next_attempt_at -> BigInt,
        claim_id -> Nullable<Text>,
        claimed_until -> Nullable<BigInt>,
        sent_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        outcome -> Nullable<Text>,
        last_error -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::joinable!(account_tokens -> users (user_id));
diesel::joinable!(mail_outbox -> users (user_id));

diesel::table! {
    login_throttles (throttle_key) {
        throttle_key -> Text,
        failures -> BigInt,
        window_started_at -> BigInt,
        blocked_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    revoked_access_tokens (jti) {
        jti -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    federation_states (state_hash) {
        state_hash -> Text,
        provider -> Text,
        browser_hash -> Text,
        request -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    pending_links (secret_hash) {
        secret_hash -> Text,
        provider -> Text,
        subject -> Text,
        email -> Nullable<Text>,
        user_id -> Text,
        request -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(pending_links -> users (user_id));

diesel::table! {
    known_sign_ins (user_id, kind, value_hash) {
        user_id -> Text,
        kind -> Text,
        value_hash -> Text,
        first_seen_at -> BigInt,
        last_seen_at -> BigInt,
    }
}

diesel::joinable!(known_sign_ins -> users (user_id));

diesel::table! {
    self_registrations (user_id) {
        user_id -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(self_registrations -> users (user_id));

diesel::table! {
    browser_sessions (id) {
        id -> Text,
        secret_hash -> Text,
        user_id -> Text,
        auth_time -> BigInt,
        amr -> Text,
        persistent -> BigInt,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        idle_expires_at -> BigInt,
        absolute_expires_at -> BigInt,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        ended_at -> Nullable<BigInt>,
        ended_reason -> Nullable<Text>,
    }
}

diesel::joinable!(browser_sessions -> users (user_id));

diesel::table! {
    session_clients (session_id, client_id) {
        session_id -> Text,
        client_id -> Text,
        first_at -> BigInt,
    }
}

diesel::joinable!(session_clients -> browser_sessions (session_id));
diesel::joinable!(session_clients -> clients (client_id));

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        granted_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::joinable!(consents -> users (user_id));
diesel::joinable!(consents -> clients (client_id));

diesel::table! {
    totp_credentials (user_id) {
        user_id -> Text,
        sealed_secret -> Text,
        created_at -> BigInt,
        confirmed_at -> Nullable<BigInt>,
        last_used_step -> BigInt,
    }
}

diesel::joinable!(totp_credentials -> users (user_id));

diesel::table! {
    recovery_codes (code_hash) {
        code_hash -> Text,
        user_id -> Text,
        created_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(recovery_codes -> users (user_id));

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Text,
        credential_id -> Text,
        name -> Text,
        credential -> Text,
        backup_eligible -> BigInt,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(passkeys -> users (user_id));

diesel::table! {
    webauthn_ceremonies (id) {
        id -> Text,
        user_id -> Nullable<Text>,
        kind -> Text,
        state -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::joinable!(webauthn_ceremonies -> users (user_id));
