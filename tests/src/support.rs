//! Helpers: build the app on a test database and call it without a socket.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;
use voucher_core::audit::Actor;
use voucher_core::auth::{self, Role};
use voucher_core::{cache::Redis, AppState, Uscc};

/// Where the tests find Redis; `REDIS_URL` overrides.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The app's state on `pool`, with Redis at `redis_url` and a fresh key directory.
pub fn state_with_redis(pool: PgPool, redis_url: &str) -> AppState {
    let key_dir = std::env::temp_dir().join(format!("voucher-test-keys-{}", Uuid::new_v4()));
    let mut state =
        AppState::new(pool, Redis::new(redis_url).expect("redis url"), &key_dir).expect("state");
    // Throttle counters live in Redis, which outlives test databases: each app counts apart.
    state.throttle.namespace = format!("test-{}:", Uuid::new_v4());
    state
}

/// The whole app on `pool`.
pub fn app(pool: PgPool) -> Router {
    voucherd::app(state_with_redis(pool, &redis_url()))
}

/// The app with its state, for tests that mint sessions or read the keys.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
}

impl TestApp {
    /// The whole app with Redis at its usual place.
    pub async fn new(pool: PgPool) -> TestApp {
        TestApp::with_redis(pool, &redis_url()).await
    }

    /// The whole app with Redis at `redis_url` (a dead port to test without it).
    pub async fn with_redis(pool: PgPool, redis_url: &str) -> TestApp {
        TestApp::with_state(state_with_redis(pool, redis_url)).await
    }

    /// The whole app on a state the test has adjusted (limits, trusted proxies).
    pub async fn with_state(state: AppState) -> TestApp {
        voucher_issuer::programs::ensure(&state, state.clock.program_year())
            .await
            .expect("program year");
        TestApp {
            router: voucherd::app(state.clone()),
            state,
        }
    }

    /// Sends a request.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        send(&self.router, request).await
    }

    /// A JSON request with an optional bearer token.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send(request(method, uri, token, body)).await
    }

    /// A platform registered straight through the redeemer's use case.
    pub async fn platform(&self, name: &str, n: u32) -> Uuid {
        let uscc = Uscc::with_check_digits("91440300", &format!("MA5P{n:04}")).unwrap();
        let mut tx = self.state.db.begin().await.unwrap();
        let p = voucher_redeemer::platforms::register(&mut tx, &Actor::System, name, &uscc)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        p.id
    }

    /// A firm registered through the portal and verified by the bureau the way a real one is:
    /// its licence uploaded through the portal, a reviewer's approval through the console's
    /// endpoint. Returns its id, a session token and its USCC.
    pub async fn firm(&self, n: u32, eligible: bool) -> (Uuid, String, Uscc) {
        let (id, token, uscc) = self.pending_firm(n, eligible).await;
        self.upload_licence(&token).await;
        let reply = self
            .call(
                "POST",
                &format!("/api/bureau/firms/{id}/verification"),
                Some(&self.reviewer().await),
                Some(json!({"decision": "verified"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        (id, token, uscc)
    }

    /// A firm registered through the portal and left `pending` (nothing uploaded yet).
    pub async fn pending_firm(&self, n: u32, eligible: bool) -> (Uuid, String, Uscc) {
        let uscc = test_uscc(n);
        let reply = self
            .call(
                "POST",
                "/api/portal/firms",
                None,
                Some(json!({
                    "uscc": uscc, "name": format!("测试企业{n}"),
                    "industry_code": if eligible { "C3911" } else { "I6510" },
                    "district": "宝安区", "contact_name": "张三", "contact_phone": "13800000000",
                    "password": "correct-horse-battery"
                })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        assert_eq!(
            reply.json()["verification"],
            "pending",
            "a registration starts pending"
        );
        let id: Uuid = reply.json()["id"].as_str().unwrap().parse().unwrap();
        let token = auth::firm_session(&self.state, id).await.unwrap().token;
        (id, token, uscc)
    }

    /// Uploads a file as the firm whose session is `token`.
    pub async fn upload(
        &self,
        token: &str,
        kind: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Reply {
        let mut r = raw(
            "POST",
            &format!("/api/portal/evidence?kind={kind}"),
            content_type,
            bytes,
        );
        r.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        self.send(r).await
    }

    /// Uploads the demo licence image as the firm's `business_license`.
    pub async fn upload_licence(&self, token: &str) {
        let reply = self
            .upload(
                token,
                "business_license",
                "image/png",
                voucherd::demo::licence_png().unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    }

    /// A session of the tests' reviewer (`test-reviewer`), whose account is made at first use.
    pub async fn reviewer(&self) -> String {
        let existing: Option<Uuid> =
            sqlx::query_scalar("select id from staff where username = 'test-reviewer'")
                .fetch_optional(&self.state.db)
                .await
                .unwrap();
        let id = match existing {
            Some(id) => id,
            None => self.account("test-reviewer", Role::Reviewer).await,
        };
        auth::staff_session(&self.state, id, "test-reviewer", Role::Reviewer)
            .await
            .unwrap()
            .token
    }

    /// Many eligible firms inserted in one statement (no password work), with sessions, marked
    /// `verified` straight in SQL as if a reviewer had approved each.
    pub async fn firms_in_bulk(&self, count: u32, offset: u32) -> Vec<(Uuid, String)> {
        self.firms_in_bulk_as(count, offset, "verified").await
    }

    /// Many eligible firms in one statement, in `verification` state (`pending`, `verified`),
    /// with sessions.
    pub async fn firms_in_bulk_as(
        &self,
        count: u32,
        offset: u32,
        verification: &str,
    ) -> Vec<(Uuid, String)> {
        let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
        let usccs: Vec<String> = (0..count)
            .map(|i| test_uscc(offset + i).to_string())
            .collect();
        let names: Vec<String> = (0..count)
            .map(|i| format!("批量企业{}", offset + i))
            .collect();
        sqlx::query(
            r#"insert into firms (id, uscc, name, industry_code, district, contact_name, contact_phone,
                                  password_hash, eligible, verification, reviewed_by, reviewed_at)
               select id, uscc, name, 'C3911', '宝安区', '张三', '13800000000', 'x', true, $4,
                      case when $4 = 'pending' then null else 'test-bulk' end,
                      case when $4 = 'pending' then null else now() end
               from unnest($1::uuid[], $2::text[], $3::text[]) as t(id, uscc, name)"#,
        )
        .bind(&ids)
        .bind(&usccs)
        .bind(&names)
        .bind(verification)
        .execute(&self.state.db)
        .await
        .unwrap();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let token = auth::firm_session(&self.state, id).await.unwrap().token;
            out.push((id, token));
        }
        out
    }

    /// A platform registered through the bureau API, with its first API key.
    pub async fn platform_with_key(&self, n: u32) -> (Uuid, String) {
        let admin = self.staff(&format!("padmin{n}"), Role::Admin).await;
        let uscc = Uscc::with_check_digits("91440300", &format!("MA5K{n:04}")).unwrap();
        let reply = self
            .call(
                "POST",
                "/api/bureau/platforms",
                Some(&admin),
                Some(json!({"name": format!("平台{n}"), "uscc": uscc})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        let body = reply.json();
        (
            body["id"].as_str().unwrap().parse().unwrap(),
            body["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// A claim through the portal by the firm whose session is `token`.
    pub async fn claim(&self, token: &str, platform: Uuid, annual_fee: &str) -> Reply {
        self.call(
            "POST",
            "/api/portal/vouchers",
            Some(token),
            Some(json!({"platform_id": platform, "annual_fee": annual_fee})),
        )
        .await
    }

    /// A voucher claimed through the portal by a new eligible firm `n`.
    pub async fn voucher(&self, platform: Uuid, n: u32, annual_fee: &str) -> Value {
        let (_, token, _) = self.firm(n, true).await;
        let reply = self.claim(&token, platform, annual_fee).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        reply.json()
    }

    /// A staff account of `role` with `STAFF_PASSWORD`, created as `voucherd admin create`
    /// does (no activation; admin and finance enrol their authenticator at the first login).
    pub async fn account(&self, username: &str, role: Role) -> Uuid {
        voucher_accounts::staff::create_with_password(
            &self.state.db,
            &Actor::System,
            username,
            STAFF_PASSWORD.to_owned(),
            role,
        )
        .await
        .unwrap()
        .id
    }

    /// A staff session of `role` on a new account, minted straight, without the second factor's
    /// login.
    pub async fn staff(&self, username: &str, role: Role) -> String {
        let id = self.account(username, role).await;
        auth::staff_session(&self.state, id, username, role)
            .await
            .unwrap()
            .token
    }

    /// A staff login through the API.
    pub async fn staff_login(&self, username: &str, password: &str, otp: Option<&str>) -> Reply {
        let mut body = json!({"username": username, "password": password});
        if let Some(otp) = otp {
            body["otp"] = json!(otp);
        }
        self.call("POST", "/api/bureau/sessions", None, Some(body))
            .await
    }
}

/// The first bytes of a PNG (signature and header): enough for the type check.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

/// A minimal PDF.
pub const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";

/// The password `TestApp::staff` gives its accounts.
pub const STAFF_PASSWORD: &str = "staff-password-1";

/// The authenticator's code for `secret` at `unix_time`, as the colleague's phone computes it.
pub fn totp_code(secret: &str, unix_time: i64) -> String {
    voucher_accounts::totp::code_at(secret, u64::try_from(unix_time).unwrap()).unwrap()
}

/// A valid USCC for test firm `n`, belonging to no real firm.
pub fn test_uscc(n: u32) -> Uscc {
    Uscc::with_check_digits("91440306", &format!("MA5T{n:04}")).unwrap()
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (panics with the body text when it isn't).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem response with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(self.json()["code"], code, "{}", self.text());
    }
}

/// Sends one request through the router.
pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("infallible router");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// A redemption request with its Idempotency-Key.
pub fn redemption(api_key: &str, idempotency_key: &str, body: Value) -> Request<Body> {
    let mut r = request("POST", "/v1/redemptions", Some(api_key), Some(body));
    r.headers_mut()
        .insert("idempotency-key", idempotency_key.parse().unwrap());
    r
}

/// `request` as if it came through a socket from `peer` (`ip:port`).
pub fn from_peer(peer: &str, mut request: Request<Body>) -> Request<Body> {
    let addr: std::net::SocketAddr = peer.parse().expect("peer address");
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    request
}

/// A JSON request with an optional bearer token.
pub fn request(method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request"),
        None => builder.body(Body::empty()).expect("request"),
    }
}

/// A request with a raw body and a content type.
pub fn raw(method: &str, uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(body.into())
        .expect("request")
}

/// A request with a raw body and a platform key.
pub fn raw_with_key(
    method: &str,
    uri: &str,
    key: &str,
    content_type: &str,
    body: &str,
) -> Request<Body> {
    let mut r = raw(method, uri, content_type, body.to_owned());
    r.headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

/// A GET.
pub fn get(uri: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("request")
}

/// Every platform's money in the journal (owed plus paid) equals its active redemptions' discounts,
/// every voucher's row agrees with its journal account, and every firm's granted total with its
/// vouchers. (A check that each entry is positive and two-legged would only re-check the
/// journal's own constraints.)
pub async fn assert_ledger_consistent(pool: &PgPool) {
    let platforms_off: i64 = sqlx::query_scalar(
        r#"select count(*) from platforms p
           where coalesce((select sum(case when j.debit in ('payable:' || p.id, 'paid:' || p.id) then j.amount else 0 end)
                                - sum(case when j.credit in ('payable:' || p.id, 'paid:' || p.id) then j.amount else 0 end)
                           from journal j
                           where j.debit in ('payable:' || p.id, 'paid:' || p.id)
                              or j.credit in ('payable:' || p.id, 'paid:' || p.id)), 0)
                 <> coalesce((select sum(r.discount) from redemptions r
                              where r.platform_id = p.id and r.status = 'active'), 0)"#,
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        platforms_off, 0,
        "every platform's payable and paid accounts hold its active redemptions' discounts"
    );
    let mismatched: i64 = sqlx::query_scalar(
        r#"select count(*) from vouchers v
           where v.face_value - v.redeemed - case when v.status in ('cancelled', 'lapsed', 'expired')
                                                  then v.face_value - v.redeemed else 0 end
                 <> coalesce((select sum(case when j.debit = 'voucher:' || v.id then j.amount
                                              when j.credit = 'voucher:' || v.id then -j.amount else 0 end)
                              from journal j where j.voucher_id = v.id), 0)"#,
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        mismatched, 0,
        "every voucher's balance equals its journal account"
    );
    let firm_mismatch: i64 = sqlx::query_scalar(
        r#"select count(*) from firm_years fy
           where fy.granted <> coalesce((select sum(case when v.status in ('cancelled', 'lapsed') then 0
                                                         when v.status = 'expired' then v.redeemed
                                                         else v.face_value end)
                                         from vouchers v
                                         where v.firm_id = fy.firm_id and v.year = fy.year), 0)"#,
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        firm_mismatch, 0,
        "every firm's granted total equals its live vouchers' face values"
    );
}

/// A pool of its own on a test database, wider than the harness's, so concurrent requests
/// really run side by side in Postgres.
pub async fn wide_pool(connect: sqlx::postgres::PgConnectOptions) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(40)
        .connect_with(connect)
        .await
        .unwrap()
}

/// A session for the firm that holds `voucher`.
pub async fn firm_token(app: &TestApp, voucher: &Value) -> String {
    let firm: Uuid = sqlx::query_scalar("select firm_id from vouchers where id = $1::uuid")
        .bind(voucher["id"].as_str().unwrap())
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    auth::firm_session(&app.state, firm).await.unwrap().token
}
