//! Private files: the data directory and everything under it belong to the service
//! user alone. Directories are created 0700 and files 0600 whatever the umask (the
//! process also sets umask 077, for files that libraries such as sled create), and a
//! file the pane trusts (a sign-in link) is refused unless the service user owns it
//! and nobody else may write it. Without Unix permissions (Windows) the modes do not
//! apply and the checks pass: there the data directory's own ACL protects it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Mode of every directory under the data directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file under the data directory.
pub const FILE_MODE: u32 = 0o600;

/// Make every file and directory this process creates from now on private (umask
/// 077), so that no library can create one readable by other users.
pub fn restrict_umask() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Create `dir` (and missing parents) mode 0700, and take group and world access
/// away from `dir` itself if it already existed with them.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, DIR_MODE);
    b.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
        }
    }
    Ok(())
}

/// Options that create a file mode 0600 (add `create`, `create_new`, `truncate`).
pub fn file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, FILE_MODE);
    o
}

/// Create (or truncate) a file mode 0600.
pub fn create_file(path: &Path) -> io::Result<File> {
    file_options().create(true).truncate(true).open(path)
}

/// Why a file the pane would trust is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Untrusted {
    #[error("is not a regular file")]
    NotAFile,
    #[error("is owned by user id {owner}, not by this service's user id {me}")]
    Owner { owner: u32, me: u32 },
    #[error("may be written by others (mode {0:o})")]
    Writable(u32),
}

/// A file (or directory, with `dir`) is trusted when this process's user owns it and
/// neither its group nor others may write it. Takes `symlink_metadata`, so a planted
/// symbolic link is refused rather than followed.
pub fn check_trusted(meta: &std::fs::Metadata, dir: bool) -> Result<(), Untrusted> {
    let kind_ok = if dir {
        meta.file_type().is_dir()
    } else {
        meta.file_type().is_file()
    };
    if !kind_ok {
        return Err(Untrusted::NotAFile);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(Untrusted::Owner {
                owner: meta.uid(),
                me,
            });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(Untrusted::Writable(meta.mode() & 0o7777));
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_and_files_are_private_and_loose_ones_are_tightened() {
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("a/b");
        create_dir_all(&deep).unwrap();
        assert_eq!((mode(&d.path().join("a")), mode(&deep)), (0o700, 0o700));
        std::fs::set_permissions(&deep, std::fs::Permissions::from_mode(0o777)).unwrap();
        create_dir_all(&deep).unwrap();
        assert_eq!(mode(&deep), 0o700);
        let f = deep.join("f");
        drop(create_file(&f).unwrap());
        assert_eq!(mode(&f), 0o600);
    }

    #[test]
    fn a_writable_or_linked_file_is_not_trusted() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        drop(create_file(&f).unwrap());
        let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
        assert_eq!(check_trusted(&meta(&f), false), Ok(()));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(
            check_trusted(&meta(&f), false),
            Err(Untrusted::Writable(0o666))
        );
        let link = d.path().join("l");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(check_trusted(&meta(&link), false), Err(Untrusted::NotAFile));
        assert_eq!(check_trusted(&meta(d.path()), true), Ok(()));
    }
}
