//! The one way a password is checked here: the attempt is counted before the check (so parallel
//! guesses get no more tries than serial ones) and taken back when the hashing queue shed the
//! check before it ran.

use voucher_core::auth;
use voucher_core::throttle::{ClientAddr, LoginAttempt};
use voucher_core::{ApiError, AppState};

/// Counts an attempt on `account` from `client`, then checks `password` against `stored` (no
/// hash spends the same work and answers false). The caller releases the attempt on success
/// and keeps it counted on failure.
pub async fn counted_check(
    state: &AppState,
    client: &ClientAddr,
    account: &str,
    password: String,
    stored: Option<String>,
) -> Result<(bool, LoginAttempt), ApiError> {
    let attempt = state.throttle.login(state, account, client).await?;
    match auth::verify_password(password, stored).await {
        Ok(ok) => Ok((ok, attempt)),
        Err(shed) => {
            // Queued out before the password was checked: this try must not lock anyone out.
            state.throttle.release(state, attempt).await;
            Err(shed)
        }
    }
}

/// A password change's check of the current password: 422 naming `current_password` when it is
/// wrong (counted like a failed login), nothing when right.
pub async fn current_password(
    state: &AppState,
    client: &ClientAddr,
    account: &str,
    password: String,
    stored: Option<String>,
) -> Result<(), ApiError> {
    let wrong = || ApiError::validation("current_password", "is wrong");
    if password.len() > 1024 {
        return Err(wrong());
    }
    let (ok, attempt) = counted_check(state, client, account, password, stored).await?;
    if !ok {
        return Err(wrong());
    }
    state.throttle.release(state, attempt).await;
    Ok(())
}
