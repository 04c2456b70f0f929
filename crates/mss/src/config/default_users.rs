//! The default local users `100`, `101`, `102` of the embedded configuration.
//!
//! Their passwords are generated at first start (16 random alphanumerics), written to
//! `DATA_DIR/default-users.ini` (mode 0600, in the `[user:NAME]` syntax of `mss.ini`) and
//! shown once. Later starts read the same file back. There is never a fixed password.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::distributions::Alphanumeric;
use rand::Rng;

use super::error::{ConfigError, Diagnostics};
use super::ini_file;
use super::model::UserConfig;
use super::validate::{user_section, Checker};

/// Names of the default users.
pub const DEFAULT_USER_NAMES: [&str; 3] = ["100", "101", "102"];
/// File name of the generated passwords inside the data folder.
pub const DEFAULT_USERS_FILE: &str = "default-users.ini";
/// Length of a generated password.
const PASSWORD_LEN: usize = 16;

/// The default users, and where their passwords are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultUsers {
    /// The users with their passwords.
    pub users: Vec<UserConfig>,
    /// The file that holds them.
    pub path: PathBuf,
    /// Whether the file was created just now (first start).
    pub created: bool,
}

impl DefaultUsers {
    /// What to print at start: every password after creation, only the file name later.
    pub fn announcement(&self) -> String {
        let names: Vec<&str> = self.users.iter().map(|u| u.name.as_str()).collect();
        if self.created {
            let mut s = format!(
                "mss: no config file; created default users {} with these passwords \
                 (kept in {}, shown only this once):\n",
                names.join(", "),
                self.path.display()
            );
            for u in &self.users {
                s.push_str(&format!("  user {:<6} password {}\n", u.name, u.password));
            }
            s
        } else {
            format!(
                "mss: no config file; default users {} (passwords in {})\n",
                names.join(", "),
                self.path.display()
            )
        }
    }
}

/// A fresh random password.
pub fn generate_password() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect()
}

/// Reads `data_dir/default-users.ini`, or creates it (and `data_dir`) with fresh passwords.
///
/// # Errors
/// [`ConfigError::Read`] when the folder or file cannot be created or read,
/// [`ConfigError::Invalid`] when an existing file is not valid.
pub fn load_or_create(data_dir: &Path) -> Result<DefaultUsers, ConfigError> {
    let path = data_dir.join(DEFAULT_USERS_FILE);
    let io_err = |source: io::Error| ConfigError::Read {
        path: path.clone(),
        source,
    };
    match fs::read_to_string(&path) {
        Ok(text) => {
            let users = parse(&path, &text)?;
            return Ok(DefaultUsers {
                users,
                path,
                created: false,
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    fs::create_dir_all(data_dir).map_err(|source| ConfigError::Read {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let users: Vec<UserConfig> = DEFAULT_USER_NAMES
        .iter()
        .map(|n| UserConfig {
            name: (*n).to_string(),
            password: generate_password(),
            display_name: None,
            max_calls: None,
        })
        .collect();
    let mut text = String::from(
        "; Default users of mss, generated at first start because no mss.ini was found.\n\
         ; Keep this file private. Delete it to get new passwords at the next start.\n",
    );
    for u in &users {
        text.push_str(&format!("\n[user:{}]\npassword = {}\n", u.name, u.password));
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err)?;
    // The mode given to open() is filtered by the umask; make sure it is exactly 0600.
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io_err)?;
    f.write_all(text.as_bytes()).map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    Ok(DefaultUsers {
        users,
        path,
        created: true,
    })
}

fn parse(path: &Path, text: &str) -> Result<Vec<UserConfig>, ConfigError> {
    let name = path.display().to_string();
    let file = ini_file::parse(&name, text).map_err(ConfigError::Invalid)?;
    let mut c = Checker::new(&file);
    let mut users = Vec::new();
    for s in &file.sections {
        match s.name.strip_prefix("user:") {
            Some(n) => users.extend(user_section(&mut c, s, n.trim())),
            None => c.section_error(s, "unknown section (expected [user:NAME])"),
        }
    }
    if users.is_empty() && c.diags.is_empty() {
        let d = file.diag(None, None, None, "no [user:NAME] section");
        c.diags.push(d);
    }
    if c.diags.is_empty() {
        Ok(users)
    } else {
        Err(ConfigError::Invalid(Diagnostics(c.diags.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_then_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("mss-data");
        let first = load_or_create(&data).unwrap();
        assert!(first.created);
        let names: Vec<&str> = first.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, DEFAULT_USER_NAMES);
        for u in &first.users {
            assert_eq!(u.password.len(), 16);
            assert!(u.password.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert_ne!(first.users[0].password, first.users[1].password);
        let mode = fs::metadata(&first.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let shown = first.announcement();
        assert!(shown.contains(&first.users[2].password));

        let second = load_or_create(&data).unwrap();
        assert!(!second.created);
        assert_eq!(second.users, first.users);
        let shown = second.announcement();
        assert!(!shown.contains(&first.users[0].password));
        assert!(shown.contains(DEFAULT_USERS_FILE));
    }

    #[test]
    fn a_broken_file_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(DEFAULT_USERS_FILE),
            "[user:100]\npasswd = x\n",
        )
        .unwrap();
        let e = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("default-users.ini:2: [user:100] passwd: unknown key"),
            "{e}"
        );
        assert!(
            e.contains("default-users.ini:1: [user:100] password: missing"),
            "{e}"
        );
    }

    #[test]
    fn passwords_differ() {
        assert_ne!(generate_password(), generate_password());
    }
}
