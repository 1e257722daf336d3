//! The Unix control socket's file: bound without taking over a live daemon's socket (a stale
//! one is replaced, anything that is not a socket is never touched), mode 0660 with an
//! optional group, and removed at exit only if it is still the file this process bound (same
//! device and inode): a second instance's socket, or a file someone put there since, stays.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

pub struct ControlSocket {
    pub listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the socket file as bound.
    identity: (u64, u64),
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl ControlSocket {
    pub fn bind(path: &Path, group: Option<&str>) -> Result<ControlSocket, String> {
        use std::os::unix::fs::FileTypeExt;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(format!("{} exists and is not a socket; not touching it", path.display()));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "{} is in use by a running pieyes (or another program); not taking it over",
                    path.display()
                ));
            }
            std::fs::remove_file(path).map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
            crate::info!("removed stale control socket {}", path.display());
        }
        let listener =
            UnixListener::bind(path).map_err(|e| format!("cannot bind control socket {}: {e}", path.display()))?;
        // Owner and group may steer; nobody else.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        if let Some(name) = group {
            let g = nix::unistd::Group::from_name(name)
                .map_err(|e| format!("--control-group {name}: {e}"))?
                .ok_or_else(|| format!("--control-group {name}: no such group"))?;
            nix::unistd::chown(path, None, Some(g.gid)).map_err(|e| format!("chgrp {name} {}: {e}", path.display()))?;
        }
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let identity = identity(path).ok_or_else(|| format!("{} vanished after bind", path.display()))?;
        Ok(ControlSocket { listener, path: path.to_path_buf(), identity })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        match identity(&self.path) {
            Some(id) if id == self.identity => {
                let _ = std::fs::remove_file(&self.path);
            }
            Some(_) => crate::info!("{} is no longer the socket this pieyes bound; leaving it", self.path.display()),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pieyes-ctlsock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn removes_only_its_own_socket_at_exit() {
        let d = dir("own");
        let p = d.join("ctl.sock");
        drop(ControlSocket::bind(&p, None).unwrap());
        assert!(!p.exists(), "its own socket is removed");

        // Someone replaced the file while we ran: it stays.
        let s = ControlSocket::bind(&p, None).unwrap();
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"not ours").unwrap();
        drop(s);
        assert_eq!(std::fs::read(&p).unwrap(), b"not ours");

        // A second instance bound after ours was unlinked: its socket stays.
        std::fs::remove_file(&p).unwrap();
        let first = ControlSocket::bind(&p, None).unwrap();
        std::fs::remove_file(&p).unwrap();
        let second = ControlSocket::bind(&p, None).unwrap();
        drop(first);
        assert!(p.exists(), "the second instance's socket is left alone");
        drop(second);
        assert!(!p.exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn never_touches_a_file_that_is_not_a_socket() {
        let d = dir("file");
        let p = d.join("ctl.sock");
        std::fs::write(&p, b"data").unwrap();
        assert!(ControlSocket::bind(&p, None).err().unwrap().contains("not a socket"));
        assert_eq!(std::fs::read(&p).unwrap(), b"data");
        let _ = std::fs::remove_dir_all(&d);
    }
}
