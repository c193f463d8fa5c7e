//! `crmproxy setup thunderbird`: Thunderbird tags for the tracking keywords, so that
//! a salesperson can ask for tracking with a tag (or its number key) and sees which
//! messages are tracked. Thunderbird shows a keyword only when a tag is defined for
//! it; tags are the preferences `mailnews.tags.<key>.tag|color|ordinal`, keys kept
//! lower-case (Dovecot and the proxy match keywords without regard to case). They
//! go into the profile's `user.js`, which Thunderbird reads at every start, merged
//! with what is there; `--print` shows the same entries for the Config Editor.

use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::GlobalOpts;
use crate::config::TrackingConfig;

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    #[command(subcommand)]
    pub client: SetupClient,
}

#[derive(Debug, clap::Subcommand)]
pub enum SetupClient {
    /// Add tags for the CRM keywords to a Thunderbird profile (its user.js).
    Thunderbird(ThunderbirdArgs),
}

#[derive(Debug, clap::Args)]
pub struct ThunderbirdArgs {
    /// Profile directory. Default: the profile Thunderbird starts with.
    #[arg(long, value_name = "DIR")]
    pub profile: Option<PathBuf>,
    /// Print the Config Editor entries instead of writing user.js.
    #[arg(long)]
    pub print: bool,
}

/// What can go wrong finding or changing a profile.
#[derive(Debug, thiserror::Error)]
pub enum ThunderbirdError {
    #[error("no Thunderbird profiles found ({0} does not exist): start Thunderbird once, or pass --profile DIR")]
    NoProfiles(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} names no default profile: pass --profile DIR")]
    NoDefault(PathBuf),
    #[error("{ini} names several default profiles ({list}): pass --profile DIR")]
    SeveralDefaults { ini: PathBuf, list: String },
    #[error("{0} is not a directory: pass the Thunderbird profile directory")]
    NotADirectory(PathBuf),
    #[error("Thunderbird is running with the profile {profile} ({holder}): quit Thunderbird, then run this again (it reads user.js when it starts)")]
    Running { profile: PathBuf, holder: String },
}

/// One tag: the keyword it shows (lower-case), its name, colour and sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub name: &'static str,
    pub color: &'static str,
    /// `None` for a built-in key (`$label1`…`$label5`), which keeps its place.
    pub ordinal: Option<String>,
}

/// The built-in tags' keys. Tags sort by ordinal, else by key (byte order), and the
/// number keys 1–9 toggle the tags in that order.
const BUILT_IN: [&str; 5] = ["$label1", "$label2", "$label3", "$label4", "$label5"];

/// The tags for the configured request and state keywords, in number-key order.
/// Their ordinals sort right after the built-in `$label5` (`"$label5"` is a prefix
/// of `"$label5.1"`), so Important…Later keep keys 1–5 and these come next.
pub fn tags(cfg: &TrackingConfig) -> Vec<Tag> {
    let wanted = [
        (&cfg.request_keyword, "Track in CRM", "#E66100"),
        (&cfg.tracked_keyword, "Tracked in CRM", "#2E8B57"),
        (&cfg.pending_keyword, "CRM: pending", "#808080"),
    ];
    let mut out: Vec<Tag> = Vec::new();
    for (keyword, name, color) in wanted {
        let key = keyword.to_ascii_lowercase();
        if out.iter().any(|t| t.key == key) {
            continue;
        }
        let ordinal = (!BUILT_IN.contains(&key.as_str())).then(|| {
            format!(
                "$label5.{}",
                out.iter().filter(|t| t.ordinal.is_some()).count() + 1
            )
        });
        out.push(Tag {
            key,
            name,
            color,
            ordinal,
        });
    }
    out
}

/// The preferences (name, string value) that define `tags`.
pub fn prefs(tags: &[Tag]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in tags {
        let base = format!("mailnews.tags.{}", t.key);
        out.push((format!("{base}.tag"), t.name.to_string()));
        out.push((format!("{base}.color"), t.color.to_string()));
        if let Some(o) = &t.ordinal {
            out.push((format!("{base}.ordinal"), o.clone()));
        }
    }
    out
}

/// A JavaScript string literal for user.js.
fn js_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn pref_line(name: &str, value: &str) -> String {
    format!("user_pref({}, {});", js_string(name), js_string(value))
}

/// The preference a `user_pref("name", …)` line sets, if the line is one.
fn pref_name(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("user_pref")?.trim_start();
    let rest = rest.strip_prefix('(')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &rest[1..];
    rest.find(quote).map(|end| &rest[..end])
}

/// Heading written above the lines this command adds.
const HEADING: &str = "// CRM tracking tags, written by `crmproxy setup thunderbird`.";

/// `existing` user.js text with `prefs` set: a line already setting one of them is
/// replaced where it stands (later duplicates dropped), the others are appended
/// under a heading. Merging twice changes nothing.
pub fn merge_user_js(existing: &str, prefs: &[(String, String)]) -> String {
    let wanted: BTreeMap<&str, &str> = prefs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut written: Vec<&str> = Vec::new();
    let mut out = String::with_capacity(existing.len() + 1024);
    for line in existing.lines() {
        match pref_name(line).and_then(|n| wanted.get_key_value(n)) {
            Some((name, value)) => {
                if !written.contains(name) {
                    written.push(name);
                    out.push_str(&pref_line(name, value));
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    let missing: Vec<_> = prefs
        .iter()
        .filter(|(n, _)| !written.contains(&n.as_str()))
        .collect();
    if !missing.is_empty() {
        if !existing.lines().any(|l| l.trim() == HEADING) {
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str(HEADING);
            out.push('\n');
        }
        for (n, v) in missing {
            out.push_str(&pref_line(n, v));
            out.push('\n');
        }
    }
    out
}

/// Where Thunderbird keeps profiles.ini on this system.
fn thunderbird_root() -> Option<PathBuf> {
    if cfg!(windows) {
        return std::env::var_os("APPDATA").map(|a| PathBuf::from(a).join("Thunderbird"));
    }
    let home = PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?);
    Some(if cfg!(target_os = "macos") {
        home.join("Library/Thunderbird")
    } else {
        home.join(".thunderbird")
    })
}

/// The sections of an INI file: name → (key → value), in order.
fn parse_ini(text: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push((name.to_string(), BTreeMap::new()));
        } else if let (Some((k, v)), Some((_, section))) = (line.split_once('='), out.last_mut()) {
            section.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    out
}

fn read_optional(path: &Path) -> Result<Option<String>, ThunderbirdError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ThunderbirdError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The profile Thunderbird starts with, as it chooses it: the default of its
/// installation (installs.ini, or the `[Install…]` sections of profiles.ini), else
/// the profile marked `Default=1`, else the only profile.
pub fn default_profile(root: &Path) -> Result<PathBuf, ThunderbirdError> {
    let profiles_ini = root.join("profiles.ini");
    let profiles = read_optional(&profiles_ini)?
        .ok_or_else(|| ThunderbirdError::NoProfiles(profiles_ini.clone()))?;
    let profiles = parse_ini(&profiles);
    let installs = read_optional(&root.join("installs.ini"))?
        .map(|t| parse_ini(&t))
        .unwrap_or_default();
    let resolve = |path: &str| {
        let p = PathBuf::from(path);
        if p.is_absolute() {
            p
        } else {
            root.join(p)
        }
    };

    let mut install_defaults: Vec<&str> = installs
        .iter()
        .chain(profiles.iter().filter(|(n, _)| n.starts_with("Install")))
        .filter_map(|(_, s)| s.get("Default").map(String::as_str))
        .collect();
    install_defaults.sort_unstable();
    install_defaults.dedup();
    match install_defaults.as_slice() {
        [one] => return Ok(resolve(one)),
        [] => {}
        several => {
            return Err(ThunderbirdError::SeveralDefaults {
                ini: profiles_ini,
                list: several.join(", "),
            })
        }
    }

    let listed: Vec<&BTreeMap<String, String>> = profiles
        .iter()
        .filter(|(n, s)| n.starts_with("Profile") && s.contains_key("Path"))
        .map(|(_, s)| s)
        .collect();
    let chosen = listed
        .iter()
        .find(|s| s.get("Default").is_some_and(|d| d == "1"))
        .or(match listed.as_slice() {
            [only] => Some(only),
            _ => None,
        })
        .ok_or_else(|| ThunderbirdError::NoDefault(profiles_ini.clone()))?;
    let path = &chosen["Path"];
    Ok(if chosen.get("IsRelative").is_some_and(|r| r == "1") {
        root.join(path)
    } else {
        PathBuf::from(path)
    })
}

/// Who holds the profile, if a Thunderbird runs with it: the `lock` symlink
/// (`address:+pid`) of a live process, or a held lock on `.parentlock`.
pub fn running_holder(profile: &Path) -> Option<String> {
    if let Ok(target) = std::fs::read_link(profile.join("lock")) {
        let target = target.to_string_lossy().into_owned();
        let pid = target
            .rsplit_once('+')
            .and_then(|(_, p)| p.parse::<u32>().ok());
        // A crash leaves the symlink behind; Thunderbird ignores it once its
        // process is gone, and so do we (where /proc tells).
        let alive = match pid {
            Some(pid) if Path::new("/proc/self").exists() => {
                Path::new(&format!("/proc/{pid}")).exists()
            }
            _ => true,
        };
        if alive {
            return Some(format!("its lock names {target}"));
        }
    }
    parent_lock_held(&profile.join(".parentlock"))
        .then(|| "another process holds its .parentlock".to_string())
}

/// Whether another process holds the fcntl lock Thunderbird takes on `.parentlock`.
#[cfg(unix)]
fn parent_lock_held(path: &Path) -> bool {
    use rustix::fs::{fcntl_lock, FlockOperation};
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return false;
    };
    match fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            let _ = fcntl_lock(&file, FlockOperation::NonBlockingUnlock);
            false
        }
        Err(e) => e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::ACCESS,
    }
}

/// Windows: a running Thunderbird keeps `parent.lock` open without sharing.
#[cfg(not(unix))]
fn parent_lock_held(path: &Path) -> bool {
    let lock = path.with_file_name("parent.lock");
    lock.exists() && std::fs::OpenOptions::new().write(true).open(&lock).is_err()
}

/// The entries to add by hand in Settings > General > Config Editor.
pub fn config_editor_text(prefs: &[(String, String)]) -> String {
    let width = prefs.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut s = String::from(
        "In Thunderbird: Settings > General > Config Editor… For each name below, type it\n\
         in the search field, choose \"String\", press + and enter the value. Then restart\n\
         Thunderbird.\n\n",
    );
    for (n, v) in prefs {
        s.push_str(&format!("  {n:<width$}  {v}\n"));
    }
    s
}

/// What the user sees once Thunderbird starts with the tags.
fn usage_text(tags: &[Tag]) -> String {
    let mut s =
        String::from("Start Thunderbird: these tags are in the Tag menu (and the message list)\n");
    let mut number = BUILT_IN.len();
    for t in tags {
        let key = match &t.ordinal {
            Some(_) => {
                number += 1;
                format!("key {number} with only the five built-in tags before it")
            }
            None => "in place of a built-in tag".to_string(),
        };
        s.push_str(&format!("  {:<15} keyword {:<14} ({key})\n", t.name, t.key));
    }
    s.push_str(
        "Tag a message \"Track in CRM\" to track it; crmproxy replaces the tag with \"Tracked in CRM\".\n",
    );
    s
}

pub fn setup(args: SetupArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    match args.client {
        SetupClient::Thunderbird(a) => thunderbird(a, global),
    }
}

fn thunderbird(args: ThunderbirdArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let cfg = global.load_config()?;
    let tags = tags(&cfg.tracking);
    let prefs = prefs(&tags);
    if args.print {
        print!("{}", config_editor_text(&prefs));
        return Ok(ExitCode::SUCCESS);
    }
    let profile = match args.profile {
        Some(p) => p,
        None => {
            let root = thunderbird_root()
                .context("cannot tell where Thunderbird keeps its profiles: pass --profile DIR")?;
            default_profile(&root)?
        }
    };
    if !profile.is_dir() {
        return Err(ThunderbirdError::NotADirectory(profile).into());
    }
    if let Some(holder) = running_holder(&profile) {
        return Err(ThunderbirdError::Running { profile, holder }.into());
    }
    let user_js = profile.join("user.js");
    let existing = read_optional(&user_js)?.unwrap_or_default();
    let merged = merge_user_js(&existing, &prefs);
    if merged == existing {
        println!("{} already has the CRM tags.", user_js.display());
    } else {
        crate::tls::write_atomic(&user_js, merged.as_bytes(), 0o600)
            .with_context(|| format!("cannot write {}", user_js.display()))?;
        println!("Wrote the CRM tags into {}.", user_js.display());
    }
    print!("{}", usage_text(&tags));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_prefs() -> Vec<(String, String)> {
        prefs(&tags(&TrackingConfig::default()))
    }

    #[test]
    fn tags_are_lower_case_and_sort_after_the_built_in_five() {
        let t = tags(&TrackingConfig::default());
        let keys: Vec<_> = t.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["$crm_track", "$crm_tracked", "$crm_pending"]);
        let mut order: Vec<&str> = BUILT_IN.to_vec();
        order.extend(t.iter().map(|t| t.ordinal.as_deref().unwrap()));
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted, "byte order as Thunderbird's strcmp");
        assert!(order[5] < "a", "before any tag keyed by its name");
    }

    #[test]
    fn a_custom_request_keyword_gets_the_tag_and_a_built_in_keeps_its_place() {
        let cfg = TrackingConfig {
            request_keyword: "$Label1".into(),
            ..TrackingConfig::default()
        };
        let t = tags(&cfg);
        assert_eq!(t[0].key, "$label1");
        assert_eq!(t[0].ordinal, None);
        assert_eq!(t[1].ordinal.as_deref(), Some("$label5.1"));
        let p = prefs(&t);
        assert!(p
            .iter()
            .any(|(n, v)| n == "mailnews.tags.$label1.tag" && v == "Track in CRM"));
        assert!(!p.iter().any(|(n, _)| n == "mailnews.tags.$label1.ordinal"));
    }

    #[test]
    fn merging_keeps_other_lines_replaces_ours_and_is_idempotent() {
        let existing = "// mine\nuser_pref(\"mail.foo\", true);\n\
                        user_pref(\"mailnews.tags.$crm_track.tag\", \"Old name\");\n\
                        user_pref('mailnews.tags.$crm_track.tag', 'Twice');\n";
        let once = merge_user_js(existing, &default_prefs());
        assert!(once.starts_with("// mine\nuser_pref(\"mail.foo\", true);\n"));
        assert_eq!(
            once.matches("mailnews.tags.$crm_track.tag").count(),
            1,
            "{once}"
        );
        assert!(once.contains("user_pref(\"mailnews.tags.$crm_track.tag\", \"Track in CRM\");"));
        assert!(!once.contains("Old name") && !once.contains("Twice"));
        assert!(once.contains("user_pref(\"mailnews.tags.$crm_tracked.ordinal\", \"$label5.2\");"));
        assert_eq!(once.matches(HEADING).count(), 1);
        assert_eq!(merge_user_js(&once, &default_prefs()), once);
        let fresh = merge_user_js("", &default_prefs());
        assert!(fresh.starts_with(HEADING), "{fresh}");
        assert_eq!(fresh.lines().count(), 1 + 9);
        assert_eq!(merge_user_js(&fresh, &default_prefs()), fresh);
    }

    #[test]
    fn the_default_profile_is_the_installation_default_else_default_1() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("profiles.ini"),
            "[Profile1]\nName=default\nIsRelative=1\nPath=old.default\nDefault=1\n\n\
             [InstallFDC34C9F024745EB]\nDefault=new.default-default\nLocked=1\n\n\
             [Profile0]\nName=default-default\nIsRelative=1\nPath=new.default-default\n\n\
             [General]\nStartWithLastProfile=1\nVersion=2\n",
        )
        .unwrap();
        assert_eq!(
            default_profile(root).unwrap(),
            root.join("new.default-default")
        );
        std::fs::write(
            root.join("profiles.ini"),
            "[Profile0]\nName=a\nIsRelative=1\nPath=a\n\n[Profile1]\nName=b\nIsRelative=0\nPath=/abs/b\nDefault=1\n",
        )
        .unwrap();
        assert_eq!(default_profile(root).unwrap(), PathBuf::from("/abs/b"));
        std::fs::write(
            root.join("installs.ini"),
            "[AAAA]\nDefault=x\n\n[BBBB]\nDefault=y\n",
        )
        .unwrap();
        let err = default_profile(root).unwrap_err().to_string();
        assert!(err.contains("x, y") && err.contains("--profile"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = default_profile(empty.path()).unwrap_err().to_string();
        assert!(err.contains("--profile"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_live_lock_refuses_and_a_stale_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(running_holder(dir.path()), None);
        let lock = dir.path().join("lock");
        std::os::unix::fs::symlink(format!("127.0.0.1:+{}", std::process::id()), &lock).unwrap();
        assert!(running_holder(dir.path()).is_some());
        std::fs::remove_file(&lock).unwrap();
        // No process has this pid (above the kernel's pid_max).
        std::os::unix::fs::symlink("127.0.0.1:+4194305", &lock).unwrap();
        assert_eq!(running_holder(dir.path()), None);
    }

    #[test]
    fn the_config_editor_text_lists_every_entry() {
        let text = config_editor_text(&default_prefs());
        for (n, v) in default_prefs() {
            assert!(text.contains(&n) && text.contains(&v), "{text}");
        }
    }
}
