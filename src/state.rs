//! The state directory: what popsel remembers between runs. Generic file handling only; each
//! stage owns its files and their types:
//!
//! - `selection.json` (the pipeline's hand-off and the anti-flap memory, `select::Selection`);
//! - `tunnels.json`, `fingerprint.key`, `audit.log` (the reconcile stage's managed tunnels, the
//!   key of their PSK fingerprints, one JSON line per write to the API);
//! - `catalog.json` (the pipeline's last good catalogue);
//! - `popsel.lock` (the one writer's lock, and its PID for the others' message).
//!
//! One writer: [`StateDir::open`] takes an exclusive OS lock on the directory (the agent,
//! `popsel apply`); the kernel releases it when the process ends, however it ends.
//! [`StateDir::open_read_only`] (`popsel plan`) takes none and writes nothing but a missing
//! key, which it creates without ever replacing one.
//!
//! Every file is written atomically (temporary file, fsync, rename), so a crash leaves the old
//! version or the new one, never half of one; a write that fails leaves no temporary file.
//! A file that cannot be used (it does not parse, is not a regular file, is larger than
//! popsel ever writes) is [`Loaded::Damaged`]; its owner decides what to rebuild and sets it
//! aside with [`StateDir::set_aside`].

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The lock file: locked by the one writer, holding its PID.
pub const LOCK_FILE: &str = "popsel.lock";

/// The largest state file popsel reads: far above any it writes (a 10,000-PoP catalogue is a
/// few MB), so that a file grown by accident or malice is reported rather than read into
/// memory.
pub const MAX_STATE_FILE_BYTES: u64 = 64 << 20;

/// The length of a secret key popsel makes; a key file of any other length is damaged.
pub const SECRET_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("state dir {path}: {detail}")]
pub struct StateError {
    pub path: PathBuf,
    pub detail: String,
}

/// What reading a state file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded<T> {
    /// No such file: a first run.
    Absent,
    Found(T),
    /// The file is there but cannot be used; why, in operator words (never its content).
    Damaged(String),
}

/// A damaged state file, and where it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    pub file: PathBuf,
    pub problem: String,
    /// `<name>.corrupt-<unix time>` in the same directory; `None` when it was left in place
    /// (the dir is open read-only, or moving it failed: `left` says which) or there was
    /// nothing to move.
    pub moved_to: Option<PathBuf>,
    /// Why it was left in place, when it was.
    pub left: Option<String>,
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "state file {} is damaged ({})",
            self.file.display(),
            self.problem
        )?;
        match (&self.moved_to, &self.left) {
            (Some(to), _) => write!(f, "; moved aside to {}", to.display()),
            (None, Some(why)) => write!(f, "; left in place: {why}"),
            (None, None) => Ok(()),
        }
    }
}

/// When an append-only log is rotated, and how many old ones are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// A file that would grow past this is renamed `<name>.1` first.
    pub max_bytes: u64,
    /// `<name>.1` (newest) to `<name>.<keep>` (oldest) are kept; older ones are dropped.
    pub keep: u32,
}

#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
    /// The one writer's lock; `None`: opened read-only.
    lock: Option<Arc<DirLock>>,
}

impl StateDir {
    /// Opens the directory as its one writer (creating it, mode 700, if need be): fails,
    /// naming the holder's PID, when another process has it. The same process may open it
    /// again (a config reload): it shares its own lock.
    pub fn open(path: &Path) -> Result<StateDir, StateError> {
        let path = prepare(path)?;
        let lock = DirLock::acquire(&path)?;
        remove_stale_temporaries(&path, "");
        Ok(StateDir {
            path,
            lock: Some(lock),
        })
    }

    /// Opens the directory to read it beside its writer (creating it, mode 700, if need be).
    /// Nothing is written through it but a missing secret key.
    pub fn open_read_only(path: &Path) -> Result<StateDir, StateError> {
        Ok(StateDir {
            path: prepare(path)?,
            lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a read-only view (`popsel plan`).
    pub fn is_read_only(&self) -> bool {
        self.lock.is_none()
    }

    fn error(&self, file: &str, detail: impl std::fmt::Display) -> StateError {
        StateError {
            path: self.path.join(file),
            detail: detail.to_string(),
        }
    }

    fn writable(&self, file: &str) -> Result<(), StateError> {
        match self.lock {
            Some(_) => Ok(()),
            None => Err(self.error(file, "opened read-only (popsel plan writes no state)")),
        }
    }

    /// Writes `bytes` to `file` atomically, with `mode`.
    pub fn write_atomic(&self, file: &str, bytes: &[u8], mode: u32) -> Result<(), StateError> {
        self.writable(file)?;
        write_atomic(&self.path.join(file), bytes, mode).map_err(|e| self.error(file, e))
    }

    /// Reads a JSON file.
    pub fn load_json<T: DeserializeOwned>(&self, file: &str) -> Loaded<T> {
        match self.read(file, MAX_STATE_FILE_BYTES) {
            Loaded::Found(bytes) => match serde_json::from_slice(&bytes) {
                Ok(value) => Loaded::Found(value),
                Err(e) => Loaded::Damaged(format!("not what popsel writes: {e}")),
            },
            Loaded::Absent => Loaded::Absent,
            Loaded::Damaged(problem) => Loaded::Damaged(problem),
        }
    }

    /// The bytes of `file`, at most `max`. Only a regular file is read: a FIFO would block,
    /// a device never end.
    fn read(&self, file: &str, max: u64) -> Loaded<Vec<u8>> {
        let path = self.path.join(file);
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Absent,
            Err(e) => return Loaded::Damaged(format!("cannot be read: {e}")),
        };
        if !meta.is_file() {
            return Loaded::Damaged(format!("not a regular file but {}", kind(&meta)));
        }
        if meta.len() > max {
            return Loaded::Damaged(format!(
                "{} bytes, more than popsel ever writes ({max})",
                meta.len()
            ));
        }
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&path)
            .and_then(|f| f.take(max.saturating_add(1)).read_to_end(&mut bytes));
        match read {
            Err(e) => Loaded::Damaged(format!("cannot be read: {e}")),
            Ok(n) if n as u64 > max => {
                Loaded::Damaged(format!("more than popsel ever writes ({max} bytes)"))
            }
            Ok(_) => Loaded::Found(bytes),
        }
    }

    /// Moves a damaged `file` aside to `<file>.corrupt-<unix time>` (`-2`, `-3`… when that
    /// name is taken), so that popsel can start it afresh and someone can look at it later.
    /// A read-only view leaves it in place.
    pub fn set_aside(&self, file: &str, problem: String) -> Damaged {
        let from = self.path.join(file);
        let mut damaged = Damaged {
            file: from.clone(),
            problem,
            moved_to: None,
            left: None,
        };
        if self.is_read_only() {
            damaged.left = Some(
                "popsel plan changes nothing; the agent or popsel apply moves it aside".into(),
            );
            return damaged;
        }
        match move_aside(&self.path, file) {
            Ok(to) => damaged.moved_to = Some(to),
            Err(why) => damaged.left = Some(why),
        }
        damaged
    }

    pub fn write_json<T: Serialize>(&self, file: &str, value: &T) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| self.error(file, e))?;
        bytes.push(b'\n');
        self.write_atomic(file, &bytes, 0o600)
    }

    /// Appends one line (a JSON document) to `file`, creating it with mode 600, and syncs it
    /// to disk before returning: a log line that says a write happened must outlive a power
    /// cut right after. A file that would grow past `rotation.max_bytes` is rotated first.
    pub fn append_json_line<T: Serialize>(
        &self,
        file: &str,
        value: &T,
        rotation: Rotation,
    ) -> Result<(), StateError> {
        self.writable(file)?;
        let mut line = serde_json::to_vec(value).map_err(|e| self.error(file, e))?;
        line.push(b'\n');
        let path = self.path.join(file);
        // Opening a FIFO to write blocks until someone reads it; a directory cannot be
        // written: either is set aside, and the log starts anew.
        if std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
            let to = move_aside(&self.path, file).map_err(|why| self.error(file, why))?;
            tracing::warn!(
                "{} is not a regular file; moved aside to {}",
                path.display(),
                to.display()
            );
        }
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        if size > 0 && size.saturating_add(line.len() as u64) > rotation.max_bytes {
            self.rotate(file, rotation.keep)
                .map_err(|e| self.error(file, format!("cannot rotate it: {e}")))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let existed = path.exists();
        let mut f = options.open(&path).map_err(|e| self.error(file, e))?;
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .map_err(|e| self.error(file, e))?;
        if !existed {
            sync_dir(&self.path);
        }
        Ok(())
    }

    /// `file.<keep-1>` → `file.<keep>` … `file` → `file.1`; the oldest is dropped.
    fn rotate(&self, file: &str, keep: u32) -> std::io::Result<()> {
        let numbered = |n: u32| self.path.join(format!("{file}.{n}"));
        if keep == 0 {
            return std::fs::remove_file(self.path.join(file));
        }
        for n in (1..keep).rev() {
            match std::fs::rename(numbered(n), numbered(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(self.path.join(file), numbered(1))?;
        sync_dir(&self.path);
        Ok(())
    }

    /// The secret key kept in `file`: exactly [`SECRET_KEY_BYTES`], as popsel makes them.
    pub fn load_secret_key(&self, file: &str) -> Loaded<Vec<u8>> {
        match self.read(file, 4096) {
            Loaded::Found(key) if key.len() == SECRET_KEY_BYTES => Loaded::Found(key),
            Loaded::Found(key) => Loaded::Damaged(format!(
                "{} bytes; popsel makes keys of {SECRET_KEY_BYTES}",
                key.len()
            )),
            Loaded::Absent => Loaded::Absent,
            Loaded::Damaged(problem) => Loaded::Damaged(problem),
        }
    }

    /// Makes a random key in `file` (mode 600) unless there is one: never replaces a key,
    /// even one another process made a moment ago (that one is returned), so that two
    /// processes never work with different keys. Allowed read-only too (`popsel plan` on a
    /// new state dir).
    pub fn make_secret_key(&self, file: &str) -> Result<Vec<u8>, StateError> {
        let mut key = [0u8; SECRET_KEY_BYTES];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| self.error(file, "no system randomness"))?;
        match write_new(&self.path.join(file), &key, 0o600) {
            Ok(()) => Ok(key.to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match self.load_secret_key(file) {
                    Loaded::Found(key) => Ok(key),
                    Loaded::Absent => Err(self.error(file, "vanished as it was made")),
                    Loaded::Damaged(problem) => Err(self.error(file, problem)),
                }
            }
            Err(e) => Err(self.error(file, e)),
        }
    }
}

/// The one writer's lock on a state dir, as one `StateDir::open` holds it. Every open of the
/// same directory by this process shares one OS lock (a config reload opens it again while
/// the old generation still holds it: no self-deadlock); the lock goes when the last is
/// dropped, or with the process.
#[derive(Debug)]
struct DirLock {
    dir: PathBuf,
}

/// The locks this process holds: the directory (canonical), the locked file, how many
/// `DirLock`s use it.
struct Held {
    dir: PathBuf,
    file: std::fs::File,
    users: usize,
}

static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

fn held() -> MutexGuard<'static, Vec<Held>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

impl DirLock {
    fn acquire(dir: &Path) -> Result<Arc<DirLock>, StateError> {
        let error = |detail: String| StateError {
            path: dir.to_owned(),
            detail,
        };
        let canonical =
            std::fs::canonicalize(dir).map_err(|e| error(format!("cannot open it: {e}")))?;
        // Held across the OS lock, so that a lock being released by this process (its last
        // user dropped under this mutex) is never mistaken for another process's.
        let mut held = held();
        if let Some(h) = held.iter_mut().find(|h| h.dir == canonical) {
            h.users += 1;
            return Ok(Arc::new(DirLock { dir: canonical }));
        }
        let path = canonical.join(LOCK_FILE);
        // A directory or a pipe where the lock file goes (popsel never makes one) must not keep
        // popsel from starting: it is set aside like any damaged state file.
        if std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
            match move_aside(&canonical, LOCK_FILE) {
                Ok(to) => tracing::warn!(
                    "state file {} is not a regular file; moved aside to {}",
                    path.display(),
                    to.display()
                ),
                Err(why) => return Err(error(format!("{LOCK_FILE} is not a regular file; {why}"))),
            }
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .map_err(|e| error(format!("cannot open its lock file {}: {e}", path.display())))?;
        // flock(2): released by the kernel when the process ends, however it ends, so a lock
        // file left by a dead process blocks nothing. (`File::try_lock` is std since 1.89;
        // Cargo.toml's rust-version still says 1.85.)
        #[allow(clippy::incompatible_msrv)]
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(error(in_use(&mut file))),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(error(format!("cannot lock {}: {e}", path.display())));
            }
        }
        // The PID is only for the message of whoever finds the lock taken.
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
        held.push(Held {
            dir: canonical.clone(),
            file,
            users: 1,
        });
        Ok(Arc::new(DirLock { dir: canonical }))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let mut held = held();
        if let Some(i) = held.iter().position(|h| h.dir == self.dir) {
            held[i].users = held[i].users.saturating_sub(1);
            if held[i].users == 0 {
                // Closing the file releases the lock, under the mutex.
                drop(held.swap_remove(i).file);
            }
        }
    }
}

/// What the process that finds the lock taken is told: who holds it.
fn in_use(file: &mut std::fs::File) -> String {
    let mut text = String::new();
    let _ = file.take(64).read_to_string(&mut text);
    let holder = match text.trim().parse::<u32>() {
        Ok(pid) => format!("PID {pid}"),
        Err(_) => "PID unknown".to_owned(),
    };
    format!(
        "in use by another popsel process ({holder}: an agent or `popsel apply`); only one may \
         write the state at a time: stop it or wait for it to finish (`popsel plan` runs beside it)"
    )
}

/// Renames `dir/file` to `dir/<file>.corrupt-<unix time>` (`-2`, `-3`… when taken); says why
/// not when it cannot.
fn move_aside(dir: &Path, file: &str) -> Result<PathBuf, String> {
    let now = crate::timestamp::unix_seconds(SystemTime::now());
    let base = format!("{file}.corrupt-{now}");
    let to = (1..1000u32)
        .map(|n| match n {
            1 => dir.join(&base),
            n => dir.join(format!("{base}-{n}")),
        })
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .ok_or("too many files set aside already")?;
    std::fs::rename(dir.join(file), &to)
        .map_err(|e| format!("it could not be moved aside: {e}"))?;
    sync_dir(dir);
    Ok(to)
}

/// Creates the directory (mode 700) if it does not exist; checks an existing one without
/// changing it: a directory other users may write to is refused, since they could plant a
/// `tunnels.json` (which `--prune` trusts) or a `fingerprint.key`.
fn prepare(path: &Path) -> Result<PathBuf, StateError> {
    let error = |detail: String| StateError {
        path: path.to_owned(),
        detail,
    };
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => {
            return Err(error(format!("not a directory but {}", kind(&meta))));
        }
        Ok(meta) => check_mode(&meta).map_err(error)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(path).map_err(|e| error(format!("cannot create it: {e}")))?
        }
        Err(e) => return Err(error(format!("cannot open it: {e}"))),
    }
    Ok(path.to_owned())
}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // Parents as usual; the state dir itself 700 from its first instant.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }?;
    // The umask may have taken bits away; never adds any.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o700))
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

#[cfg(unix)]
fn check_mode(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "other users may write to it (mode {mode:o}), so they could plant state popsel trusts; \
             use a directory of its own (popsel creates a missing one with mode 700) or `chmod go-w` it"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else if meta.is_symlink() {
        "a symbolic link"
    } else if meta.is_file() {
        "a file"
    } else {
        "something else"
    }
}

/// Removes the temporary files of atomic writes in `dir` whose writer is gone: a process
/// killed between creating one and renaming it into place leaves it behind, and nothing else
/// ever would remove it. Files of a live process (this one, a `popsel plan` making the key)
/// are left alone; so is everything not named as [`TempFile`] names them.
/// Only names starting with `.<prefix>` are looked at (a swanctl dir is shared with other
/// programs).
pub fn remove_stale_temporaries(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.get(1..).is_some_and(|n| n.starts_with(prefix)))
            .and_then(temporary_writer)
        else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(
                    "removed {}, left by an interrupted write (PID {pid})",
                    entry.path().display()
                ),
                Err(e) => tracing::warn!("cannot remove {}: {e}", entry.path().display()),
            }
        }
    }
}

/// The writer's PID in a temporary file's name, `.<target>.<pid>.<16 hex digits>.tmp`.
fn temporary_writer(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = rest.rsplitn(3, '.');
    let random = parts.next()?;
    let pid = parts.next()?;
    parts.next().filter(|target| !target.is_empty())?;
    if random.len() != 16 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether a process with this PID runs; where that cannot be told (no /proc), it is taken
/// to run, so that nothing is removed.
fn process_alive(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new("/proc").join(pid.to_string()).exists()
}

/// A temporary file next to its target, removed when dropped unless it was renamed into
/// place: every way out of a failed write (an error, a panic) cleans up.
struct TempFile {
    path: PathBuf,
    placed: bool,
}

impl TempFile {
    /// A fresh, unpredictable name, created exclusively: never an existing file or a link
    /// someone left there, so the content (a PSK, in the swanctl secrets) is only ever
    /// written under `mode`.
    fn create(target: &Path, mode: u32) -> std::io::Result<(TempFile, std::fs::File)> {
        let dir = target.parent().unwrap_or(Path::new("."));
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("state");
        let path = dir.join(format!(
            ".{name}.{}.{:016x}.tmp",
            std::process::id(),
            fastrand::u64(..)
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        let file = options.open(&path)?;
        let temp = TempFile {
            path,
            placed: false,
        };
        // The umask may have taken bits away from `mode`; set it exactly, before any byte.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        Ok((temp, file))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The content written and on disk under a temporary name.
fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<TempFile> {
    let (temp, mut f) = TempFile::create(path, mode)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(temp)
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut temp = write_temp(path, bytes, mode)?;
    std::fs::rename(&temp.path, path)?;
    temp.placed = true;
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Writes `path` only if it does not exist (`AlreadyExists` otherwise): a hard link of the
/// finished temporary file, which the kernel refuses over an existing name.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let temp = write_temp(path, bytes, mode)?;
    std::fs::hard_link(&temp.path, path)?;
    drop(temp);
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// A rename or a new name is durable once its directory is synced.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` atomically with `mode` unless it already holds exactly them.
/// Returns whether it wrote. An existing file that is not a regular one (a FIFO would block
/// the read) or is larger than any state file is replaced, not read.
pub fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<bool> {
    let same = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64)
        && std::fs::read(path).is_ok_and(|old| old == bytes);
    if same {
        return Ok(false);
    }
    write_atomic(path, bytes, mode)?;
    Ok(true)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
