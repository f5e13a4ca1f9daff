//! Key material in `VOUCHER_KEY_DIR`: the Ed25519 keys that sign vouchers and the secret that
//! signs sessions. Created on first start with mode 0600, never logged, reloaded from disk so a
//! `voucherd keys rotate` reaches running servers.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// One voucher-signing key.
pub struct SigningKey {
    /// Key id, carried in every token's header.
    pub kid: String,
    pkcs8: Vec<u8>,
    /// The raw 32-byte public key.
    pub public: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.kid)
    }
}

impl SigningKey {
    /// The PKCS#8 document (secret).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }
}

/// Every key in the directory at one moment.
#[derive(Debug)]
pub struct KeySet {
    /// The key that signs new vouchers.
    pub current: String,
    /// All keys by kid (old ones still verify the vouchers they signed).
    pub keys: BTreeMap<String, SigningKey>,
    /// The HS256 secret for firm and staff sessions.
    pub session_secret: Vec<u8>,
}

impl KeySet {
    /// The key that signs now.
    pub fn signing(&self) -> &SigningKey {
        &self.keys[&self.current]
    }
}

/// The key directory, shared by every request; reload picks up rotations.
#[derive(Clone, Debug)]
pub struct KeyRing {
    dir: PathBuf,
    set: Arc<RwLock<Arc<KeySet>>>,
}

const CURRENT_FILE: &str = "current";
const SESSION_FILE: &str = "session.secret";
const KEY_PREFIX: &str = "voucher-";
const KEY_SUFFIX: &str = ".p8";

impl KeyRing {
    /// Opens the directory, creating it and a first key and session secret when empty.
    pub fn open(dir: &Path) -> anyhow::Result<KeyRing> {
        create_private_dir(dir)?;
        if !dir.join(SESSION_FILE).exists() {
            let mut secret = vec![0u8; 32];
            SystemRandom::new()
                .fill(&mut secret)
                .map_err(|_| anyhow::anyhow!("no system randomness"))?;
            write_private(&dir.join(SESSION_FILE), &secret)?;
        }
        if !dir.join(CURRENT_FILE).exists() {
            add_key(dir)?;
        }
        let set = load(dir)?;
        Ok(KeyRing {
            dir: dir.to_owned(),
            set: Arc::new(RwLock::new(Arc::new(set))),
        })
    }

    /// The keys as they are now.
    pub fn get(&self) -> Arc<KeySet> {
        Arc::clone(&self.set.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the directory again (after a rotation by another process).
    pub fn reload(&self) -> anyhow::Result<()> {
        let set = load(&self.dir)?;
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        Ok(())
    }

    /// Adds a new signing key and makes it current; old keys stay to verify what they signed.
    pub fn rotate(&self) -> anyhow::Result<String> {
        let kid = add_key(&self.dir)?;
        self.reload()?;
        Ok(kid)
    }

    /// Reloads every 30 seconds, so all replicas sign with the newest key soon after a rotation.
    pub fn spawn_reloader(&self) {
        let ring = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = ring.reload() {
                    tracing::error!(error = %e, "reloading VOUCHER_KEY_DIR failed; keeping the keys in memory");
                }
            }
        });
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("VOUCHER_KEY_DIR {} cannot be created", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("VOUCHER_KEY_DIR {} permissions", dir.display()))?;
    }
    Ok(())
}

/// Writes a file readable by its owner only, atomically (temp file, then rename).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn add_key(dir: &Path) -> anyhow::Result<String> {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?;
    let mut suffix = [0u8; 4];
    rng.fill(&mut suffix)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    let date = time::OffsetDateTime::now_utc().date();
    let kid = format!(
        "{:04}{:02}{:02}-{}",
        date.year(),
        u8::from(date.month()),
        date.day(),
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    write_private(
        &dir.join(format!("{KEY_PREFIX}{kid}{KEY_SUFFIX}")),
        pkcs8.as_ref(),
    )?;
    write_private(&dir.join(CURRENT_FILE), kid.as_bytes())?;
    Ok(kid)
}

fn load(dir: &Path) -> anyhow::Result<KeySet> {
    let mut keys = BTreeMap::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(kid) = name
            .strip_prefix(KEY_PREFIX)
            .and_then(|n| n.strip_suffix(KEY_SUFFIX))
        else {
            continue;
        };
        let pkcs8 = fs::read(entry.path())?;
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| anyhow::anyhow!("key file {name} is not an Ed25519 PKCS#8 key"))?;
        keys.insert(
            kid.to_owned(),
            SigningKey {
                kid: kid.to_owned(),
                public: pair.public_key().as_ref().to_vec(),
                pkcs8,
            },
        );
    }
    let current = fs::read_to_string(dir.join(CURRENT_FILE))
        .context("VOUCHER_KEY_DIR has no 'current' file")?
        .trim()
        .to_owned();
    if !keys.contains_key(&current) {
        anyhow::bail!("VOUCHER_KEY_DIR: the current key {current} has no key file");
    }
    let session_secret =
        fs::read(dir.join(SESSION_FILE)).context("VOUCHER_KEY_DIR has no session secret")?;
    if session_secret.len() < 32 {
        anyhow::bail!("VOUCHER_KEY_DIR: the session secret is shorter than 32 bytes");
    }
    Ok(KeySet {
        current,
        keys,
        session_secret,
    })
}
