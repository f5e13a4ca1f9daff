//! Password hashing with a memory budget, and the password policy.
//!
//! argon2id with its default parameters needs ~19 MiB per hash. Running it on tokio's blocking
//! pool (up to 512 threads) let a crowd of logins take the server to gigabytes, so hashing and
//! verification run here instead: a fixed set of worker threads (one per core), each reusing
//! one block buffer for every hash it computes, fed by a bounded queue. A job that finds the
//! queue full, or that waits past [`MAX_WAIT`], is refused with 503 `overloaded` and a
//! `Retry-After` estimated from the queue, so a storm costs at most
//! `workers × 19 MiB` of hashing memory and a few KiB per queued job.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::oneshot;

use crate::error::ApiError;

/// Longest a job may wait in the queue before it is refused with 503.
pub const MAX_WAIT: Duration = Duration::from_secs(5);
/// The queue is kept to about this much work (estimated from the recent hash time): a job that
/// would wait longer is refused at once, told to come back when about half of it is done. The
/// queue must hold more than a `Retry-After` second's worth of work, or the workers would idle
/// while refused clients wait out their whole seconds.
pub const TARGET_WAIT: Duration = Duration::from_secs(3);
/// Jobs queued per worker at most, whatever the estimate says (a few hundred bytes each).
pub const QUEUE_PER_WORKER: usize = 1024;

/// A hash of a password that is never anyone's: verifying against it costs what a real check
/// costs, so an unknown account takes as long as a known one.
const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2E2hKLwhfzcDsSw8aNsYfTYN8Yf8GU6GHm6H6k3mWVs";

enum Work {
    Hash(String),
    Verify(String, String),
}

enum Done {
    Hashed(anyhow::Result<String>),
    Verified(bool),
    Shed,
}

struct Job {
    work: Work,
    queued_at: Instant,
    reply: oneshot::Sender<Done>,
}

/// The hashing pool of one server (cheap to clone).
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    queue: SyncSender<Job>,
    workers: usize,
    queued: AtomicUsize,
    /// Moving average of one hash's duration, in microseconds, for `Retry-After`.
    avg_micros: AtomicU64,
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Passwords::new(cores.clamp(1, 8))
    }
}

impl Passwords {
    /// A pool of `workers` threads with a queue of `workers × QUEUE_PER_WORKER` jobs.
    pub fn new(workers: usize) -> Passwords {
        let workers = workers.max(1);
        let (queue, jobs) = sync_channel::<Job>(workers * QUEUE_PER_WORKER);
        let inner = Arc::new(Inner {
            queue,
            workers,
            queued: AtomicUsize::new(0),
            avg_micros: AtomicU64::new(50_000),
        });
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..workers {
            let (jobs, inner) = (Arc::clone(&jobs), Arc::downgrade(&inner));
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&jobs, &inner));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Passwords { inner }
    }

    /// Hashes a new password (argon2id, default parameters, random salt) as a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        match self.submit(Work::Hash(password)).await? {
            Done::Hashed(result) => Ok(result?),
            Done::Verified(_) | Done::Shed => Err(self.shed()),
        }
    }

    /// Checks a password against a stored hash; with no hash (unknown account) it spends the
    /// same work and answers false.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| DUMMY.to_owned());
        match self.submit(Work::Verify(password, stored)).await? {
            Done::Verified(ok) => Ok(ok && known),
            Done::Hashed(_) | Done::Shed => Err(self.shed()),
        }
    }

    /// Jobs waiting now (for metrics and tests).
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    async fn submit(&self, work: Work) -> Result<Done, ApiError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work,
            queued_at: Instant::now(),
            reply,
        };
        let ahead = self.inner.queued.fetch_add(1, Ordering::Relaxed) as u64;
        let avg = self.inner.avg_micros.load(Ordering::Relaxed);
        let wait = ahead * avg / self.inner.workers as u64;
        if wait > TARGET_WAIT.as_micros() as u64 {
            self.inner.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(self.shed());
        }
        match self.inner.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.inner.queued.fetch_sub(1, Ordering::Relaxed);
                return Err(self.shed());
            }
        }
        // The worker answers within MAX_WAIT plus one hash; the margin covers a slow machine.
        match tokio::time::timeout(MAX_WAIT * 2, answer).await {
            Ok(Ok(done)) => Ok(done),
            _ => Err(self.shed()),
        }
    }

    /// 503 with a `Retry-After` of about half the queued work (queued jobs × one hash ÷
    /// workers), so the retry arrives while the workers still have work in hand.
    fn shed(&self) -> ApiError {
        let queued = self.queued() as u64;
        let micros = self.inner.avg_micros.load(Ordering::Relaxed);
        let secs = (queued * micros / self.inner.workers as u64 / 2).div_ceil(1_000_000);
        ApiError::overloaded(
            secs.clamp(1, 10),
            "many logins are being checked right now; retry after the seconds in Retry-After",
        )
    }
}

fn work(jobs: &Mutex<Receiver<Job>>, inner: &std::sync::Weak<Inner>) {
    // One block buffer per worker, grown to the largest parameters seen and reused: this is
    // what keeps a storm's hashing memory at workers × 19 MiB.
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let job = {
            let jobs = jobs.lock().unwrap_or_else(|e| e.into_inner());
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.queued.fetch_sub(1, Ordering::Relaxed);
        if job.reply.is_closed() {
            continue;
        }
        if job.queued_at.elapsed() > MAX_WAIT {
            let _ = job.reply.send(Done::Shed);
            continue;
        }
        let started = Instant::now();
        let done = match job.work {
            Work::Hash(password) => Done::Hashed(hash_with(&mut blocks, &password)),
            Work::Verify(password, stored) => {
                Done::Verified(verify_with(&mut blocks, &password, &stored))
            }
        };
        let took = started.elapsed().as_micros() as u64;
        let avg = inner.avg_micros.load(Ordering::Relaxed);
        inner
            .avg_micros
            .store((avg * 7 + took) / 8, Ordering::Relaxed);
        let _ = job.reply.send(done);
    }
}

fn argon2_for(algorithm: Algorithm, version: Version, params: Params) -> Argon2<'static> {
    Argon2::new(algorithm, version, params)
}

fn compute(
    blocks: &mut Vec<Block>,
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> anyhow::Result<()> {
    let needed = params.block_count();
    if blocks.len() < needed {
        blocks.resize(needed, Block::default());
    }
    argon
        .hash_password_into_with_memory(password, salt, out, &mut blocks[..needed])
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

fn hash_with(blocks: &mut Vec<Block>, password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    let params = Params::default();
    let argon = argon2_for(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(
        blocks,
        &argon,
        &params,
        password.as_bytes(),
        &salt,
        &mut out,
    )?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
    ))
}

fn verify_with(blocks: &mut Vec<Block>, password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or_default();
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    let argon = argon2_for(algorithm, version, params.clone());
    if compute(blocks, &argon, &params, password.as_bytes(), salt, &mut out).is_err() {
        return false;
    }
    // Constant time: every byte is compared whatever the first difference.
    out.len() == expected.len()
        && out
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The process's one hashing pool: however many apps a process builds (tests build many), the
/// hashing memory stays workers × 19 MiB.
pub fn global() -> &'static Passwords {
    static POOL: std::sync::OnceLock<Passwords> = std::sync::OnceLock::new();
    POOL.get_or_init(Passwords::default)
}

/// Shortest password accepted (SPEC "Accounts and duties").
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (argon2 takes any length; this bounds the work and the body).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Checks a new password: 10 to 128 characters, and not common or easily guessed (zxcvbn score
/// 3 or more, with the account's own names counted as guessable). The detail is English; the
/// pages show their own Chinese hint for `password`.
pub fn check_new_password(
    field: &str,
    password: &str,
    user_inputs: &[&str],
) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(ApiError::validation(
            field,
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(ApiError::validation(
            field,
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    let entropy = zxcvbn::zxcvbn(password, user_inputs);
    if u8::from(entropy.score()) < 3 {
        return Err(ApiError::validation(
            field,
            "is too easy to guess (a common word, a sequence, a date, a repeated pattern or the account's own name); use a longer mix of unrelated words",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[tokio::test]
    async fn a_pooled_hash_verifies_with_the_reference_argon2_and_back() {
        let pool = Passwords::new(1);
        let hash = pool.hash("ridge-lantern-cobalt".into()).await.unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default()
            .verify_password(b"ridge-lantern-cobalt", &parsed)
            .is_ok());
        assert!(pool
            .verify("ridge-lantern-cobalt".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!pool
            .verify("ridge-lantern-cobalT".into(), Some(hash))
            .await
            .unwrap());
        assert!(!pool.verify("anything".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn work_past_the_queue_bound_is_refused_with_overloaded_and_retry_after() {
        let pool = Passwords::new(1);
        let mut waiting = Vec::new();
        for _ in 0..(QUEUE_PER_WORKER + 8) {
            let pool = pool.clone();
            waiting.push(tokio::spawn(async move {
                pool.verify("x".repeat(12), None).await
            }));
        }
        let mut shed = 0;
        for w in waiting {
            if let Err(e) = w.await.unwrap() {
                assert_eq!(e.code(), crate::ErrorCode::Overloaded);
                assert!(e.retry_after().is_some());
                shed += 1;
            }
        }
        assert!(
            shed >= 1,
            "{} jobs on one worker are far more than {TARGET_WAIT:?} of work",
            QUEUE_PER_WORKER + 8
        );
    }

    #[test]
    fn weak_and_short_passwords_are_refused_naming_the_field() {
        let cases = [
            ("short1!", false, "fewer than 10 characters"),
            ("password123", false, "a common password"),
            ("1234567890", false, "a sequence"),
            ("aaaaaaaaaaaa", false, "a repeat"),
            ("qwertyuiop", false, "a keyboard row"),
            ("shenzhenfactory", false, "the account's own name"),
            ("ridge-lantern-cobalt", true, "unrelated words"),
            ("Tq8#vW2m!pLx", true, "random characters"),
        ];
        for (password, ok, why) in cases {
            let result =
                check_new_password("password", password, &["shenzhenfactory", "13800000000"]);
            assert_eq!(result.is_ok(), ok, "{password}: {why}");
            if let Err(e) = result {
                assert!(e.detail().starts_with("password:"), "{password}");
            }
        }
    }
}
